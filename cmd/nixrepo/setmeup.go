package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

func newSetmeupCmd(a *app) *cobra.Command {
	var repoName, base string
	cmd := &cobra.Command{
		Use:   "setmeup --repo REPO --url BASE",
		Short: "Print the nix.conf lines that make Nix use a repository",
		Long: `setmeup prints the exact nix.conf lines for Nix users of repository REPO,
published under BASE (the URL where the bucket is served, e.g. a CDN or a
static file server over the store folder): the substituter URL with the
repository's priority, and its public key for trusted-public-keys.`,
		Example: `  nixrepo setmeup --repo nix-local --url https://cache.example.org`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if repoName == "" || base == "" {
				return usageError{errors.New("setmeup: --repo REPO and --url BASE are required")}
			}
			u, err := url.Parse(base)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
				return usageError{fmt.Errorf("setmeup: --url %q is not an http(s) or file URL", base)}
			}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			r, err := cfg.Repo(repoName)
			if err != nil {
				return usageError{err}
			}
			pub, err := publicKeyOf(cfg, r)
			if err != nil {
				return err
			}
			sub := strings.TrimSuffix(base, "/") + "/" + r.Name
			if r.Priority > 0 {
				sub += fmt.Sprintf("?priority=%d", r.Priority)
			}
			if a.jsonOut {
				return a.printJSON(map[string]string{"substituter": sub, "trustedPublicKey": pub.String()})
			}
			fmt.Fprintf(a.stdout, "# nix.conf (or /etc/nix/nix.conf) for repository %s\n", r.Name)
			fmt.Fprintf(a.stdout, "extra-substituters = %s\n", sub)
			fmt.Fprintf(a.stdout, "extra-trusted-public-keys = %s\n", pub)
			fmt.Fprintf(a.stdout, "# or, to use only this repository:\n# substituters = %s\n# trusted-public-keys = %s\n", sub, pub)
			return nil
		},
	}
	cmd.Flags().StringVarP(&repoName, "repo", "r", "", "repository (required)")
	cmd.Flags().StringVar(&base, "url", "", "URL where the bucket is served (required)")
	return cmd
}
