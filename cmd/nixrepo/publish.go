package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/publish"
	"github.com/nixrepo/nixrepo/site"
)

func newPublishCmd(a *app) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Write each repository's derived files (nix-cache-info)",
		Long: `publish writes the files derived from the repositories so that the bucket,
behind any static file server, is a complete set of Nix substituters: each
virtual repository materialised as its own prefix (the union of its members,
first member winning; NAR files copied server-side where the bucket can,
conflicting NarHashes reported), then the package catalog and search index
brought up to date (as "nixrepo index" does, so the site shows new paths and
channel snapshots), then each repository's nix-cache-info (StoreDir,
WantMassQuery: 1, Priority), then the static site under _site/. Objects are
only rewritten when their content changes.

The site shows only public repositories (public = true) unless [site] repos
lists others with [site] include_private = true: nothing of another
repository (package, version, store path, channel) is on any page or in the
site's search files.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			rep, err := a.publish(cmd.Context(), cfg, a.indexStep(cfg, a.indexDir(cfg, dir), false))
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(struct {
					*publish.AllReport
					Index *index.UpdateReport `json:"index"`
				}{rep, rep.Index})
			}
			printIndexReport(a, rep.Index)
			printPublishReport(a, rep)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "index-dir", "", "search index folder (default $"+indexDirEnv+", else var/index next to the config)")
	return cmd
}

// publish runs the publish stage; with index set (run, publish), the
// catalog update is part of it, after the virtual repositories and before
// the site.
func (a *app) publish(ctx context.Context, cfg *config.Config, index *publish.IndexStep) (*publish.AllReport, error) {
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	plan := publish.Plan{Index: index}
	for i := range cfg.Repos {
		r := &cfg.Repos[i]
		plan.Repos = append(plan.Repos, publish.Repo{Name: r.Name, Priority: r.Priority})
		if r.Type != config.TypeVirtual {
			continue
		}
		v := publish.Virtual{Name: r.Name, Members: r.Members}
		if r.SigningKeyFile != "" {
			if v.Key, err = a.loadSigningKey(cfg, r); err != nil {
				return nil, err
			}
		}
		plan.Virtual = append(plan.Virtual, v)
	}
	plan.Site = siteOptions(cfg)
	return publish.All(ctx, st, plan)
}

// siteOptions are the static site's options (nil when it is disabled).
func siteOptions(cfg *config.Config) *site.Options {
	if cfg.Site.Disabled {
		return nil
	}
	return &site.Options{BaseURL: cfg.Site.BaseURL, ServerURL: cfg.Site.ServerURL, Title: cfg.Site.Title, Repos: cfg.SiteRepos()}
}

func printPublishReport(a *app, rep *publish.AllReport) {
	fmt.Fprintf(a.stdout, "published: %d object(s) written, %d up to date\n", rep.Written, len(rep.Objects)-rep.Written)
	if rep.Site >= 0 {
		fmt.Fprintf(a.stdout, "site: %d object(s) written or removed under %s\n", rep.Site, store.SitePrefix)
	}
	for _, v := range rep.Virtual {
		fmt.Fprintf(a.stdout, "virtual %s: %d paths (%d added, %d NAR files copied)\n", v.Repo, v.Paths, v.Added, v.Copied)
		for _, c := range v.Conflicts {
			fmt.Fprintf(a.stdout, "  conflict %s: %s wins over %s (%s)\n", c.StorePath, c.Chosen, c.Ignored, c.NarHashes)
		}
		for _, sk := range v.Skipped {
			fmt.Fprintf(a.stdout, "  skipped %s: references missing from every member\n", sk)
		}
	}
}
