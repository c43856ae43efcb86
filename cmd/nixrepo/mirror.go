package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/config"
)

func newMirrorCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Mirror from upstream into remote repositories",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{errors.New("mirror: name a subcommand (channels)")}
		},
	}
	var repoName string
	channels := &cobra.Command{
		Use:   "channels [--repo R]",
		Short: "Mirror the upstream channels of remote repositories",
		Long: `channels mirrors, for each remote repository (or only --repo), every channel in
its channels list from channels_upstream (default https://channels.nixos.org):
it follows the channel's redirect to the current release, records the release
name as the snapshot ID, downloads nixexprs.tar.xz (checked against its
published .sha256), git-revision, store-paths.xz and packages.json.br, and
publishes the snapshot. A release it already has is not downloaded again; an
upstream that points to an older release never moves the channel back.
"nixrepo run" does this too.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			results, err := a.mirrorChannels(cmd.Context(), cfg, repoName)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(results)
			}
			for _, r := range results {
				printMirrorResult(a, r)
			}
			return nil
		},
	}
	channels.Flags().StringVarP(&repoName, "repo", "r", "", "only this repository")
	cmd.AddCommand(channels)
	return cmd
}

func (a *app) mirrorChannels(ctx context.Context, cfg *config.Config, only string) ([]*ingest.MirrorResult, error) {
	results := []*ingest.MirrorResult{}
	var todo []*config.Repo
	for i := range cfg.Repos {
		r := &cfg.Repos[i]
		if only != "" && r.Name != only {
			continue
		}
		if r.Type == config.TypeRemote && len(r.Channels) > 0 {
			todo = append(todo, r)
		}
	}
	if only != "" && len(todo) == 0 {
		return nil, usageError{fmt.Errorf("mirror channels: repository %q is not a remote repository with channels", only)}
	}
	if len(todo) == 0 {
		return results, nil
	}
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	for _, r := range todo {
		for _, ch := range r.Channels {
			res, err := ingest.MirrorChannel(ctx, st.Repo(r.Name), r.ChannelsUpstream, ch, &ingest.MirrorOptions{Keep: r.ChannelKeep, Pins: r.ChannelPins})
			if err != nil {
				return results, fmt.Errorf("repository %s: %w", r.Name, err)
			}
			results = append(results, res)
		}
	}
	return results, nil
}

func printMirrorResult(a *app, r *ingest.MirrorResult) {
	switch r.Outcome {
	case "mirrored":
		fmt.Fprintf(a.stdout, "channel %s: mirrored %s (%s; sha256 %s); current snapshot %s\n", r.Channel, r.Release, humanBytes(r.Bytes), r.Push.Snapshot.NarHash, r.Push.Latest)
	case "up-to-date":
		fmt.Fprintf(a.stdout, "channel %s: up to date (%s)\n", r.Channel, r.Release)
	case "behind":
		fmt.Fprintf(a.stdout, "channel %s: upstream points to %s, older than the current snapshot; not moved\n", r.Channel, r.Release)
	}
}
