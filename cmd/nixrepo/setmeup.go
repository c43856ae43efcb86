package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/server"
)

func newSetmeupCmd(a *app) *cobra.Command {
	var repoName, base, channel string
	cmd := &cobra.Command{
		Use:   "setmeup --repo REPO --url BASE",
		Short: "Print the nix.conf lines that make Nix use a repository",
		Long: `setmeup prints the exact nix.conf lines for Nix users of repository REPO,
published under BASE (the URL where the bucket is served, e.g. a CDN or a
static file server over the store folder): the substituter URL with the
repository's priority, and its public key for trusted-public-keys, both for
static hosting of the bucket (BASE/REPO) and for "nixrepo serve"
(BASE/api/nix/REPO), with the netrc line and the "nix copy --to" command for
uploads. With --channel NAME it prints the channel's nix-channel --add lines
and, for each snapshot, its immutable URL with the fetchTarball sha256.`,
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
			cfg, r, err := a.configRepo(repoName)
			if err != nil {
				return err
			}
			if channel != "" {
				return a.printChannels(cmd.Context(), r.Name, channel, base, true)
			}
			pub, err := publicKeyOf(cfg, r)
			if err != nil {
				return err
			}
			base = strings.TrimSuffix(base, "/")
			prio := ""
			if r.Priority > 0 {
				prio = fmt.Sprintf("?priority=%d", r.Priority)
			}
			static := base + "/" + r.Name + prio
			srv := base + server.NixPrefix + r.Name
			upload := base + server.UploadPrefix + r.Name
			if a.jsonOut {
				return a.printJSON(map[string]string{
					"substituter":       static,
					"serverSubstituter": srv + prio,
					"uploadURL":         upload,
					"netrc":             fmt.Sprintf("machine %s login nixrepo password TOKEN", u.Hostname()),
					"trustedPublicKey":  pub.String(),
				})
			}
			w := a.stdout
			fmt.Fprintf(w, "# Repository %s. Put these lines in nix.conf (/etc/nix/nix.conf, or ~/.config/nix/nix.conf).\n\n", r.Name)
			fmt.Fprintf(w, "# If %s serves the store bucket statically (nginx, S3 website, CDN):\n", base)
			fmt.Fprintf(w, "extra-substituters = %s\n", static)
			fmt.Fprintf(w, "extra-trusted-public-keys = %s\n\n", pub)
			fmt.Fprintf(w, "# If %s is `nixrepo serve`:\n", base)
			fmt.Fprintf(w, "extra-substituters = %s%s\n", srv, prio)
			fmt.Fprintf(w, "extra-trusted-public-keys = %s\n", pub)
			if !r.Public {
				fmt.Fprintf(w, "# the repository is private: give Nix a token (nix.conf: netrc-file = /etc/nix/netrc)\n")
			}
			fmt.Fprintf(w, "# /etc/nix/netrc (a token from `nixrepo token new`; any login works):\n")
			fmt.Fprintf(w, "#   machine %s login nixrepo password TOKEN\n", u.Hostname())
			fmt.Fprintf(w, "# upload a build (needs a token with write access to %s); uploads have their own URL,\n", r.Name)
			fmt.Fprintf(w, "# so that Nix's cache of the unsigned narinfos it sends does not shadow the signed ones\n")
			fmt.Fprintf(w, "# substituted from the URL above:\n")
			fmt.Fprintf(w, "#   nix copy --to '%s' ./result\n", upload)
			return nil
		},
	}
	cmd.Flags().StringVarP(&repoName, "repo", "r", "", "repository (required)")
	cmd.Flags().StringVar(&base, "url", "", "URL where the bucket is served (required)")
	cmd.Flags().StringVar(&channel, "channel", "", "print the nix-channel and fetchTarball lines of this channel instead")
	return cmd
}
