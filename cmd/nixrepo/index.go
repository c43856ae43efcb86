package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/publish"
)

// indexDirEnv overrides the default search index folder.
const indexDirEnv = "NIXREPO_INDEX_DIR"

func newIndexCmd(a *app) *cobra.Command {
	var rebuild bool
	var dir string
	cmd := &cobra.Command{
		Use:   "index",
		Short: "Build or update the package catalog and its search index",
		Long: `index catalogs every repository: each store path is classified by its name
(package, derivation, source, other) and grouped by package and version, with
its outputs, sizes, upload time and repositories, the channel snapshots that
carried it and the metadata of mirrored channels' packages.json.br. Versions
are ordered exactly as Nix orders them (builtins.compareVersions); versions
that compare equal but are spelled differently, or that have several builds
of one output, are flagged as ambiguous, never dropped.

The catalog is kept in the bucket under _nixrepo/catalog/. The search index
(for "nixrepo search" and the server's /api/search) is derived from it and
kept in a local folder: --index-dir, else $NIXREPO_INDEX_DIR, else var/index
next to the configuration file. It is rebuilt from the bucket alone when it
is missing or damaged.

Runs are incremental: only narinfos that are new since the last run are
read, and only the packages they (or new channel snapshots) touch are
recomputed and re-indexed. --rebuild reads everything again.`,
		Example: `  nixrepo index
  nixrepo index --rebuild --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			rep, err := a.runIndex(cmd.Context(), cfg, a.indexDir(cfg, dir), rebuild)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(rep)
			}
			printIndexReport(a, rep)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rebuild, "rebuild", false, "read every narinfo again and rebuild the catalog and the index from scratch")
	cmd.Flags().StringVar(&dir, "index-dir", "", "search index folder (default $"+indexDirEnv+", else var/index next to the config)")
	return cmd
}

// indexDir resolves the search index folder.
func (a *app) indexDir(cfg *config.Config, flag string) string {
	if flag != "" {
		return absPath(flag)
	}
	if d := os.Getenv(indexDirEnv); d != "" {
		return absPath(d)
	}
	return cfg.Path("var/index")
}

// catalogRepos describes the configured repositories for the catalog.
func catalogRepos(cfg *config.Config) []index.RepoInfo {
	repos := make([]index.RepoInfo, len(cfg.Repos))
	for i := range cfg.Repos {
		r := &cfg.Repos[i]
		repos[i] = index.RepoInfo{Name: r.Name, Type: r.Type, Priority: r.Priority, Description: r.Description}
		if r.SigningKeyFile != "" {
			if k, err := publicKeyOf(cfg, r); err == nil {
				repos[i].PublicKey = k.String()
			}
		}
	}
	return repos
}

// indexMemoryLimit is the soft memory limit of "nixrepo index" unless
// GOMEMLIMIT says otherwise: a full build of a million store paths has a
// few hundred MiB live, and without a limit Go's collector lets the heap
// grow to twice that.
const indexMemoryLimit = 896 << 20

func (a *app) runIndex(ctx context.Context, cfg *config.Config, dir string, rebuild bool) (*index.UpdateReport, error) {
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	step := a.indexStep(cfg, dir, rebuild)
	if rebuild {
		return index.Rebuild(ctx, st, step.Repos, step.Options)
	}
	return index.Update(ctx, st, step.Repos, step.Options)
}

// indexStep is the catalog update of the index and run commands; it sets
// the index's soft memory limit unless GOMEMLIMIT says otherwise.
func (a *app) indexStep(cfg *config.Config, dir string, rebuild bool) *publish.IndexStep {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(indexMemoryLimit)
	}
	return &publish.IndexStep{
		Repos:   catalogRepos(cfg),
		Rebuild: rebuild,
		Options: &index.BuildOptions{
			IndexDir: dir,
			Logger:   slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		},
	}
}

func printIndexReport(a *app, rep *index.UpdateReport) {
	s := rep.Stats
	secs := rep.Duration.Seconds()
	if rep.Full {
		fmt.Fprintf(a.stdout, "index: full build in %.2fs (%d narinfos), generation %d\n", secs, rep.Added, rep.Generation)
	} else {
		fmt.Fprintf(a.stdout, "index: updated in %.2fs: %d narinfo(s) new, %d removed, %d snapshot(s) changed; %d package(s) changed, %d removed; generation %d\n",
			secs, rep.Added, rep.Removed, rep.Snapshots, len(rep.Changed), len(rep.Deleted), rep.Generation)
		if rep.IndexRebuilt {
			fmt.Fprintln(a.stdout, "index: the search index was missing or behind and was rebuilt from the bucket")
		}
	}
	fmt.Fprintf(a.stdout, "catalog: %d packages, %d versions, %d package paths (also %d derivations, %d sources, %d other)\n",
		s.Packages, s.Versions, s.Paths, s.Derivations, s.Sources, s.Other)
}
