package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/internal/nix"
)

func newVerifyCmd(a *app) *cobra.Command {
	var repoName string
	cmd := &cobra.Command{
		Use:   "verify [--repo REPO]",
		Short: "Re-check every path of the repositories",
		Long: `verify re-reads every narinfo of a repository (all repositories without --repo)
and checks that its NAR file is present with the claimed FileSize and FileHash,
that it decompresses to a well-formed NAR with the claimed NarSize and NarHash,
that the repository key signed it, and that every reference is present.
The exit status is 1 when any path fails.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			repos := cfg.Repos
			if repoName != "" {
				r, err := cfg.Repo(repoName)
				if err != nil {
					return usageError{err}
				}
				repos = []config.Repo{*r}
			}
			st, err := a.openStoreToRead(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			var reports []*ingest.VerifyReport
			failed := 0
			for i := range repos {
				r := &repos[i]
				keys, err := verifyKeys(cfg, r)
				if err != nil {
					return err
				}
				progress, finish := a.progressBar("verify " + r.Name)
				rep, err := ingest.Verify(ctx, st.Repo(r.Name), &ingest.VerifyOptions{
					Keys: keys, Workers: cfg.Workers(), Progress: progress,
				})
				finish()
				if err != nil {
					return err
				}
				failed += rep.Failed
				reports = append(reports, rep)
			}
			if a.jsonOut {
				if err := a.printJSON(reports); err != nil {
					return err
				}
			} else {
				for _, rep := range reports {
					fmt.Fprintf(a.stdout, "%s: %d path(s) checked, %d ok, %d failed (%s read in %.2fs)\n",
						rep.Repo, rep.Checked, rep.OK, rep.Failed, humanBytes(rep.Bytes), float64(rep.Duration)/1e9)
					for _, p := range rep.Problems {
						fmt.Fprintf(a.stdout, "  %s: %s\n", p.StorePath, p.Reason)
					}
				}
			}
			if failed > 0 {
				return failedError{fmt.Errorf("%d path(s) failed verification", failed)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&repoName, "repo", "r", "", "only this repository")
	return cmd
}

// verifyKeys are the keys a repository's paths must be signed by: its own
// key, and for a remote repository the upstream keys it trusts.
func verifyKeys(cfg *config.Config, r *config.Repo) ([]nix.PublicKey, error) {
	var keys []nix.PublicKey
	if r.SigningKeyFile != "" {
		pub, err := publicKeyOf(cfg, r)
		if err != nil {
			return nil, err
		}
		keys = append(keys, pub)
	}
	for _, s := range r.TrustedKeys {
		k, err := nix.ParsePublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("repository %s: trusted key %q: %w", r.Name, s, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
