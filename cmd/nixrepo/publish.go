package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/publish"
)

func newPublishCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "publish",
		Short: "Write each repository's derived files (nix-cache-info)",
		Long: `publish writes the files derived from the repositories so that the bucket,
behind any static file server, is a complete set of Nix substituters: each
repository's nix-cache-info (StoreDir, WantMassQuery: 1, Priority). Objects
are only rewritten when their content changes.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			rep, err := a.publish(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(rep)
			}
			printPublishReport(a, rep)
			return nil
		},
	}
}

func (a *app) publish(ctx context.Context, cfg *config.Config) (*publish.Report, error) {
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	repos := make([]publish.Repo, len(cfg.Repos))
	for i, r := range cfg.Repos {
		repos[i] = publish.Repo{Name: r.Name, Priority: r.Priority}
	}
	return publish.Run(ctx, st, repos)
}

func printPublishReport(a *app, rep *publish.Report) {
	fmt.Fprintf(a.stdout, "published: %d object(s) written, %d up to date\n", rep.Written, len(rep.Objects)-rep.Written)
}
