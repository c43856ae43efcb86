package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/internal/nix"
)

// loadSigningKey reads a repository's secret key, creating it first when the
// repository allows that and the file does not exist.
func (a *app) loadSigningKey(cfg *config.Config, r *config.Repo) (nix.SecretKey, error) {
	path := cfg.Path(r.SigningKeyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && r.GenerateKey {
		k, err := nix.GenerateKey(r.Name+"-1", rand.Reader)
		if err != nil {
			return nix.SecretKey{}, err
		}
		if err := writeKeyFile(path, k, false); err != nil {
			return nix.SecretKey{}, err
		}
		fmt.Fprintf(a.stderr, "nixrepo: created signing key %s for repository %s (public key %s)\n", path, r.Name, k.Public())
		return k, nil
	}
	if err != nil {
		return nix.SecretKey{}, fmt.Errorf("repository %s: signing key: %w (create one with `nixrepo keygen %s-1 --out %s`)", r.Name, err, r.Name, r.SigningKeyFile)
	}
	k, err := nix.ParseSecretKey(string(data))
	if err != nil {
		return nix.SecretKey{}, fmt.Errorf("repository %s: signing key %s: %w", r.Name, path, err)
	}
	return k, nil
}

// writeKeyFile writes a secret key readable by its owner only, never
// replacing an existing file unless force is set.
func writeKeyFile(path string, k nix.SecretKey, force bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists (use --force to replace it)", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(k.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// publicKeyOf returns the public key matching a repository's signing key
// without creating anything.
func publicKeyOf(cfg *config.Config, r *config.Repo) (nix.PublicKey, error) {
	data, err := os.ReadFile(cfg.Path(r.SigningKeyFile))
	if err != nil {
		return nix.PublicKey{}, fmt.Errorf("repository %s: signing key: %w", r.Name, err)
	}
	k, err := nix.ParseSecretKey(strings.TrimSpace(string(data)))
	if err != nil {
		return nix.PublicKey{}, fmt.Errorf("repository %s: signing key %s: %w", r.Name, cfg.Path(r.SigningKeyFile), err)
	}
	return k.Public(), nil
}
