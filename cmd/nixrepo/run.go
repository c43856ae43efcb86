package main

import (
	"fmt"

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

An incoming folder that does not exist yet is skipped. The exit status is 0
when nothing was refused and 1 otherwise (publish still runs).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			out := struct {
				Channels []*channel.MirrorResult `json:"channels"`
				Ingest   []*ingest.Report        `json:"ingest"`
				Index    *index.UpdateReport     `json:"index"`
				Publish  *publish.AllReport      `json:"publish"`
			}{Ingest: []*ingest.Report{}}
			out.Channels, err = a.mirrorChannels(ctx, cfg, "")
			if err != nil {
				return err
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
					return err
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
				return err
			}
			out.Index = out.Publish.Index
			if !a.jsonOut {
				printIndexReport(a, out.Index)
			}
			if a.jsonOut {
				if err := a.printJSON(out); err != nil {
					return err
				}
			} else {
				printPublishReport(a, out.Publish)
			}
			if refused > 0 {
				return failedError{fmt.Errorf("%d path(s) refused (reasons above)", refused)}
			}
			return nil
		},
	}
}
