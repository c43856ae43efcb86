package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/publish"
	"github.com/nixrepo/nixrepo/site"
)

func newPublishCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "publish",
		Short: "Write each repository's derived files (nix-cache-info)",
		Long: `publish writes the files derived from the repositories so that the bucket,
behind any static file server, is a complete set of Nix substituters: each
virtual repository materialised as its own prefix (the union of its members,
first member winning; NAR files copied server-side where the bucket can,
conflicting NarHashes reported), then each repository's nix-cache-info
(StoreDir, WantMassQuery: 1, Priority), then the static site under _site/.
Objects are only rewritten when their content changes.

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

// publishReport is what publish did.
type publishReport struct {
	*publish.Report
	Virtual []*publish.VirtualReport `json:"virtual"`
	// Site counts static-site objects written or removed (-1: no catalog yet).
	Site int `json:"site"`
}

func (a *app) publish(ctx context.Context, cfg *config.Config) (*publishReport, error) {
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	repos := make([]publish.Repo, len(cfg.Repos))
	for i, r := range cfg.Repos {
		repos[i] = publish.Repo{Name: r.Name, Priority: r.Priority}
	}
	rep := &publishReport{Virtual: []*publish.VirtualReport{}}
	for i := range cfg.Repos {
		r := &cfg.Repos[i]
		if r.Type != config.TypeVirtual {
			continue
		}
		v := publish.Virtual{Name: r.Name, Members: r.Members}
		if r.SigningKeyFile != "" {
			if v.Key, err = a.loadSigningKey(cfg, r); err != nil {
				return nil, err
			}
		}
		vr, err := publish.Materialize(ctx, st, v)
		if err != nil {
			return nil, err
		}
		rep.Virtual = append(rep.Virtual, vr)
	}
	// nix-cache-info after the content: a repository becomes visible once
	// complete.
	if rep.Report, err = publish.Run(ctx, st, repos); err != nil {
		return nil, err
	}
	rep.Site = -1
	if !cfg.Site.Disabled {
		cat, err := index.Load(ctx, st)
		switch {
		case err == nil:
			if rep.Site, err = publish.Site(ctx, st, cat, site.Options{BaseURL: cfg.Site.BaseURL, ServerURL: cfg.Site.ServerURL, Title: cfg.Site.Title, Repos: cfg.SiteRepos()}); err != nil {
				return nil, err
			}
		case !errors.Is(err, index.ErrNoCatalog):
			return nil, err
		}
	}
	return rep, nil
}

func printPublishReport(a *app, rep *publishReport) {
	fmt.Fprintf(a.stdout, "published: %d object(s) written, %d up to date\n", rep.Written, len(rep.Objects)-rep.Written)
	if rep.Site >= 0 {
		fmt.Fprintf(a.stdout, "site: %d object(s) written or removed under %s\n", rep.Site, publish.SitePrefix)
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
