package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/ingest/channel"
	"github.com/nixrepo/nixrepo/publish"
)

func newRunCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "The scheduled job: ingest every incoming source, then publish",
		Long: `run is the job a CI step or cron runs. It mirrors the upstream channels of
remote repositories (see "nixrepo mirror channels"). For every repository it ingests each
configured incoming binary cache (see "nixrepo ingest" for the checks), deleting
what it accepted from the incoming source unless keep_incoming is set, so the
next run only does new work. Refused uploads stay in place and the report says
why. Then it publishes (see "nixrepo publish"): the virtual repositories, then
the package catalog and search index (see "nixrepo index", so the catalog
includes what the virtual repositories just gained), then each repository's
nix-cache-info and the static site.

An incoming folder that does not exist yet is skipped. A stage that fails (a
channels upstream that is down, a source that cannot be read) is reported and
the others still run: ingest after a failed mirror, publish after a failed
ingest. The exit status is 0 when every stage succeeded and nothing was
refused, 1 otherwise; with --json the report lists the failed stages under
"errors".`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			// Every stage runs whatever happened in the one before: an
			// upstream that is down stops neither ingest nor publish. Each
			// failure is reported as it happens and counted in the exit
			// status.
			type stageError struct {
				Stage string `json:"stage"`
				Error string `json:"error"`
			}
			out := struct {
				Channels []*channel.MirrorResult `json:"channels"`
				Ingest   []*ingest.Report        `json:"ingest"`
				Index    *index.UpdateReport     `json:"index"`
				Publish  *publish.AllReport      `json:"publish"`
				Errors   []stageError            `json:"errors"`
			}{Ingest: []*ingest.Report{}, Errors: []stageError{}}
			failed := func(stage string, err error) {
				out.Errors = append(out.Errors, stageError{Stage: stage, Error: oneLine(err)})
				fmt.Fprintf(a.stderr, "nixrepo: run: %s: %s\n", stage, oneLine(err))
			}
			out.Channels, err = a.mirrorChannels(ctx, cfg, "")
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				failed("mirror channels", err)
			}
			if !a.jsonOut {
				for _, r := range out.Channels {
					printMirrorResult(a, r)
				}
			}
			refused := 0
			for i := range cfg.Repos {
				r := &cfg.Repos[i]
				if len(r.Incoming) == 0 {
					continue
				}
				reports, err := a.ingestSources(ctx, cfg, r, r.Incoming, !r.KeepIncoming, false)
				out.Ingest = append(out.Ingest, reports...)
				if err != nil {
					if ctx.Err() != nil {
						return err
					}
					failed("ingest "+r.Name, err)
				}
				for _, rep := range reports {
					refused += rep.Refused
					if !a.jsonOut {
						printIngestReport(a.stdout, rep)
					}
				}
			}
			out.Publish, err = a.publish(ctx, cfg, a.indexStep(cfg, a.indexDir(cfg, ""), false))
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				failed("publish", err)
			}
			if out.Publish != nil {
				out.Index = out.Publish.Index
			}
			if !a.jsonOut && out.Index != nil {
				printIndexReport(a, out.Index)
			}
			if a.jsonOut {
				if err := a.printJSON(out); err != nil {
					return err
				}
			} else if out.Publish != nil {
				printPublishReport(a, out.Publish)
			}
			var problems []string
			if n := len(out.Errors); n > 0 {
				stages := make([]string, n)
				for i, e := range out.Errors {
					stages[i] = e.Stage
				}
				problems = append(problems, fmt.Sprintf("%d stage(s) failed (%s; reasons above)", n, strings.Join(stages, ", ")))
			}
			if refused > 0 {
				problems = append(problems, fmt.Sprintf("%d path(s) refused (reasons above)", refused))
			}
			if len(problems) > 0 {
				return failedError{errors.New(strings.Join(problems, "; "))}
			}
			return nil
		},
	}
}
