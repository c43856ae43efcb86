package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/ingest/channel"
	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/internal/nix"
)

func newMirrorCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Mirror from upstream into remote repositories",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{errors.New("mirror: name a subcommand (channels, paths)")}
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
			// What was mirrored is reported even when another channel
			// failed; the failures make the exit status 1.
			results, err := a.mirrorChannels(cmd.Context(), cfg, repoName)
			var ue usageError
			if errors.As(err, &ue) || cmd.Context().Err() != nil {
				return err
			}
			if a.jsonOut {
				if jerr := a.printJSON(results); jerr != nil {
					return jerr
				}
			} else {
				for _, r := range results {
					printMirrorResult(a, r)
				}
			}
			if err != nil {
				return failedError{err}
			}
			return nil
		},
	}
	channels.Flags().StringVarP(&repoName, "repo", "r", "", "only this repository")
	cmd.AddCommand(channels, newMirrorPathsCmd(a))
	return cmd
}

func newMirrorPathsCmd(a *app) *cobra.Command {
	var repoName, from, chName string
	var workers int
	cmd := &cobra.Command{
		Use:   "paths --repo R (PATH… | --from FILE | --channel NAME)",
		Short: "Prefetch the closures of store paths from a remote repository's upstream",
		Long: `paths copies the full closures of the given store paths from the upstream of
remote repository R into R, so they stay available offline. Paths come from
the arguments (/nix/store/… or basenames), from --from FILE (one per line; a
.xz file is decompressed, so a channel's store-paths.xz works), or from the
current snapshot of channel NAME of R (its store-paths.xz).

Every narinfo must be signed by one of the repository's trusted_keys and every
NAR file is verified (FileHash, FileSize, NarHash, NarSize, NAR structure)
while it is stored. Paths already present are skipped; an interrupted run
resumes without downloading stored NAR files again. Downloads run in parallel
with a progress bar. The exit status is 1 when any path failed.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if repoName == "" {
				return usageError{errors.New("mirror paths: --repo is required")}
			}
			n := 0
			for _, set := range []bool{len(args) > 0, from != "", chName != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				return usageError{errors.New("mirror paths: give store paths as arguments, or --from FILE, or --channel NAME (exactly one)")}
			}
			cfg, r, st, err := a.openRepo(ctx, repoName)
			if err != nil {
				return err
			}
			defer st.Close()
			if r.Type != config.TypeRemote {
				return usageError{fmt.Errorf("mirror paths: repository %s is %s, not remote", r.Name, r.Type)}
			}
			up, err := upstreamOf(r)
			if err != nil {
				return err
			}
			var roots []nix.StorePath
			switch {
			case from != "":
				roots, err = readStorePathsFile(from)
			case chName != "":
				roots, err = channel.SnapshotStorePaths(ctx, st.Repo(r.Name), chName)
			default:
				roots, err = channel.ParseStorePaths(strings.Join(args, "\n"))
			}
			var bad *channel.StorePathListError
			if errors.As(err, &bad) {
				return usageError{fmt.Errorf("mirror paths: %w", err)}
			}
			if err != nil {
				return fmt.Errorf("mirror paths: %w", err)
			}
			var key nix.SecretKey
			if r.SigningKeyFile != "" {
				if key, err = a.loadSigningKey(cfg, r); err != nil {
					return err
				}
			}
			progress, finish := a.progressBar("mirror " + r.Name)
			rep, err := ingest.MirrorPaths(ctx, st.Repo(r.Name), up, roots, &ingest.MirrorPathsOptions{Workers: workers, Key: key, Progress: progress})
			finish()
			if err != nil {
				return err
			}
			if a.jsonOut {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				secs := float64(rep.Duration) / 1e9
				fmt.Fprintf(a.stdout, "%s ← %s: %d requested, closure %d: %d already present, %d mirrored, %d failed; %s in %.2fs\n",
					rep.Repo, rep.Upstream, rep.Requested, rep.Closure, rep.Present, rep.Fetched, rep.Failed, humanBytes(rep.Bytes), secs)
				for _, p := range rep.Problems {
					fmt.Fprintf(a.stdout, "  failed %s: %s\n", p.StorePath, p.Reason)
				}
			}
			if rep.Failed > 0 {
				return failedError{fmt.Errorf("%d path(s) failed", rep.Failed)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&repoName, "repo", "r", "", "remote repository (required)")
	cmd.Flags().StringVar(&from, "from", "", "file listing store paths (.xz accepted)")
	cmd.Flags().StringVar(&chName, "channel", "", "use the current snapshot's store-paths.xz of this channel of the repository")
	cmd.Flags().IntVarP(&workers, "jobs", "j", 8, "parallel downloads")
	return cmd
}

// readStorePathsFile reads --from FILE: a list of store paths, xz-compressed
// when its name ends in .xz.
func readStorePathsFile(name string) ([]nix.StorePath, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	compression := "none"
	if strings.HasSuffix(name, ".xz") {
		compression = "xz"
	}
	paths, err := channel.ReadStorePaths(f, compression)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return paths, nil
}

func (a *app) mirrorChannels(ctx context.Context, cfg *config.Config, only string) ([]*channel.MirrorResult, error) {
	results := []*channel.MirrorResult{}
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
	// One channel's failure (its upstream down, a bad tarball) does not
	// keep the others from being mirrored; the errors are returned together.
	var errs []error
	for _, r := range todo {
		for _, ch := range r.Channels {
			res, err := channel.Mirror(ctx, st.Repo(r.Name), r.ChannelsUpstream, ch, &channel.MirrorOptions{Keep: r.ChannelKeep, Pins: r.ChannelPins, Tarball: tarballLimits(cfg)})
			if err != nil {
				if ctx.Err() != nil {
					return results, ctx.Err()
				}
				errs = append(errs, fmt.Errorf("repository %s: %w", r.Name, err))
				continue
			}
			results = append(results, res)
		}
	}
	return results, errors.Join(errs...)
}

func printMirrorResult(a *app, r *channel.MirrorResult) {
	switch r.Outcome {
	case "mirrored":
		fmt.Fprintf(a.stdout, "channel %s: mirrored %s (%s; sha256 %s); current snapshot %s\n", r.Channel, r.Release, humanBytes(r.Bytes), r.Push.Snapshot.NarHash, r.Push.Latest)
	case "up-to-date":
		fmt.Fprintf(a.stdout, "channel %s: up to date (%s)\n", r.Channel, r.Release)
	case "behind":
		fmt.Fprintf(a.stdout, "channel %s: upstream points to %s, older than the current snapshot; not moved\n", r.Channel, r.Release)
	}
}
