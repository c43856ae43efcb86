package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/internal/store"
)

func newIngestCmd(a *app) *cobra.Command {
	var repoName string
	var consume bool
	cmd := &cobra.Command{
		Use:   "ingest --repo REPO SOURCE...",
		Short: "Verify, sign and store the paths of binary caches in a repository",
		Long: `ingest admits every store path of each SOURCE into repository REPO. A SOURCE is
a folder or a gocloud URL (file://, s3://, …) holding a binary cache as written
by "nix copy --to file://DIR". Its writer is not trusted: a folder is read
without following links, and a narinfo, NAR file or folder on the way that is
a symbolic link, FIFO, device or socket refuses its path (never opened); so
does a narinfo over 1 MiB.

Each path is fully verified before it becomes visible: the narinfo parses by
Nix's rules, the NAR file is there with the claimed FileSize and FileHash, it
decompresses (xz, zstd, bzip2, gzip, none; Nix's br, lz4 and lzip are
refused) to a well-formed NAR with the claimed NarSize and NarHash, and every reference is in the repository or in the same
batch. Accepted paths are signed with the repository key; NAR files are stored
as uploaded, first and once; narinfos last. Paths the repository already has
are skipped; a different NarHash for an existing path is refused. Refused
paths are reported with the reason and leave nothing behind.

Only a local repository takes ingested paths: a remote one is filled from its
upstream (nixrepo mirror paths, or the server pulling through), a virtual one
from its members (nixrepo publish); naming one is refused (exit status 2).

The exit status is 0 when nothing was refused and 1 otherwise.`,
		Example: `  nix copy --to file:///tmp/staging ./result
  nixrepo ingest --repo nix-local /tmp/staging`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if repoName == "" {
				return usageError{errors.New("ingest: --repo REPO is required")}
			}
			if len(args) == 0 {
				return usageError{errors.New("ingest: name at least one SOURCE (a binary cache folder or URL)")}
			}
			cfg, r, err := a.configRepo(repoName)
			if err != nil {
				return err
			}
			reports, err := a.ingestSources(cmd.Context(), cfg, r, args, consume, true)
			if err != nil {
				return err
			}
			return a.finishIngest(reports)
		},
	}
	cmd.Flags().StringVarP(&repoName, "repo", "r", "", "repository to ingest into (required)")
	cmd.Flags().BoolVar(&consume, "consume", false, "delete accepted paths from the sources afterwards")
	return cmd
}

// ingestSources ingests each source into repository r. A source that does
// not exist is an error when mustExist, else reported and skipped (an
// incoming folder nobody has written to yet).
func (a *app) ingestSources(ctx context.Context, cfg *config.Config, r *config.Repo, names []string, consume, mustExist bool) ([]*ingest.Report, error) {
	if err := r.IngestError(); err != nil {
		return nil, usageError{fmt.Errorf("ingest: %w", err)}
	}
	// Open every source before anything else, so a typo fails fast and
	// creates nothing.
	type source struct {
		name string
		st   *store.Store
	}
	var sources []source
	defer func() {
		for _, s := range sources {
			if s.st != nil {
				s.st.Close()
			}
		}
	}()
	for _, name := range names {
		// A source's writer is not trusted: a folder is read without
		// following links (store.OpenSource).
		st, err := store.OpenSource(ctx, name, cfg.Dir)
		if errors.Is(err, store.ErrNotFound) {
			if mustExist {
				return nil, fmt.Errorf("ingest: source %s does not exist", name)
			}
			st = nil
		} else if err != nil {
			return nil, fmt.Errorf("ingest: source %s: %w", name, err)
		}
		sources = append(sources, source{name, st})
	}
	key, err := a.loadSigningKey(cfg, r)
	if err != nil {
		return nil, err
	}
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var reports []*ingest.Report
	for _, src := range sources {
		if src.st == nil {
			reports = append(reports, &ingest.Report{Repo: r.Name, Source: src.name, Paths: []ingest.PathReport{},
				Skipped: "source does not exist yet"})
			continue
		}
		progress, finish := a.progressBar("ingest " + r.Name)
		rep, err := ingest.Run(ctx, st.Repo(r.Name), src.st.Root(), &ingest.Options{
			Key:      key,
			Workers:  cfg.Workers(),
			Consume:  consume,
			Progress: progress,
		})
		finish()
		if err != nil {
			return reports, err
		}
		rep.Source = src.name
		reports = append(reports, rep)
	}
	return reports, nil
}

// finishIngest prints reports and turns refusals into exit status 1.
func (a *app) finishIngest(reports []*ingest.Report) error {
	refused := 0
	for _, r := range reports {
		refused += r.Refused
	}
	if a.jsonOut {
		if err := a.printJSON(reports); err != nil {
			return err
		}
	} else {
		for _, r := range reports {
			printIngestReport(a.stdout, r)
		}
	}
	if refused > 0 {
		return failedError{fmt.Errorf("%d path(s) refused (reasons above)", refused)}
	}
	return nil
}

func printIngestReport(w io.Writer, r *ingest.Report) {
	if r.Skipped != "" {
		fmt.Fprintf(w, "%s ← %s: skipped: %s\n", r.Repo, r.Source, r.Skipped)
		return
	}
	secs := float64(r.Duration) / 1e9
	rate := ""
	if secs > 0 && r.BytesRead > 0 {
		rate = fmt.Sprintf(", %s/s", humanBytes(int64(float64(r.BytesRead)/secs)))
	}
	fmt.Fprintf(w, "%s ← %s: %d accepted, %d already present, %d refused; read %s, stored %s in %.2fs%s\n",
		r.Repo, r.Source, r.Accepted, r.Present, r.Refused, humanBytes(r.BytesRead), humanBytes(r.Written), secs, rate)
	if r.Gone > 0 {
		fmt.Fprintf(w, "  %d path(s) left the source while it was read (another run consuming it took them)\n", r.Gone)
	}
	if r.Consumed > 0 {
		fmt.Fprintf(w, "  consumed %d path(s) from the source\n", r.Consumed)
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, p := range r.Paths {
		if p.Outcome == ingest.Refused {
			fmt.Fprintf(tw, "  refused\t%s\t%s\n", p.StorePath, p.Reason)
		}
	}
	tw.Flush()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
