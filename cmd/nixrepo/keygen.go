package main

import (
	"crypto/rand"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/internal/nix"
)

func newKeygenCmd(a *app) *cobra.Command {
	var out, pubOut string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen NAME --out FILE",
		Short: "Create a signing key in Nix's format and print its public key",
		Long: `keygen writes a new ed25519 secret key named NAME to FILE (mode 0600) in the
format of nix-store --generate-binary-cache-key, and prints the public key
("NAME:base64") for trusted-public-keys. Keys made by Nix work in nixrepo and
keys made by nixrepo work in Nix. By convention NAME ends in a number
("nix-local-1") so keys can be rotated.`,
		Example: `  nixrepo keygen nix-local-1 --out keys/nix-local.sec`,
		Args:    exactArgs(1, "one key NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{fmt.Errorf("keygen: --out FILE is required")}
			}
			k, err := nix.GenerateKey(args[0], rand.Reader)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			if err := writeKeyFile(out, k, force); err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			pub := k.Public().String()
			if pubOut != "" {
				if err := os.WriteFile(pubOut, []byte(pub), 0o644); err != nil {
					return fmt.Errorf("keygen: %w", err)
				}
			}
			if a.jsonOut {
				return a.printJSON(map[string]string{"name": k.Name, "secretKeyFile": absPath(out), "publicKey": pub})
			}
			fmt.Fprintln(a.stdout, pub)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "file to write the secret key to (required)")
	cmd.Flags().StringVar(&pubOut, "public-out", "", "also write the public key to this file")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing key file")
	return cmd
}
