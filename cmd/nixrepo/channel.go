package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/ingest/channel"
	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/publish"
)

func newChannelCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "channel",
		Short: "Publish and inspect channel snapshots",
		Long: `Channels are versioned snapshots of a Nix expression tarball (nixexprs.tar.xz),
for nix-channel and for pinning with fetchTarball or flake inputs. Snapshots are
immutable; each channel has a current snapshot that only moves forward.

Layout in repository R: channels/NAME/FLAVOR/SNAPSHOT/nixexprs.tar.xz (+
git-revision, store-paths.xz, packages.json.br) for each snapshot,
channels/NAME/channel.json (state), and channels/NAME/nixexprs.tar.xz, a copy of
the current snapshot's tarball for static hosting.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{errors.New("channel: name a subcommand (push, list, show)")}
		},
	}
	cmd.AddCommand(newChannelPushCmd(a), newChannelListCmd(a), newChannelShowCmd(a))
	return cmd
}

func newChannelPushCmd(a *app) *cobra.Command {
	var repoName, chName, flavor, snapshot, gitRev, storePaths string
	var force, noSite bool
	cmd := &cobra.Command{
		Use:   "push --repo R --channel NAME --flavor nixpkgs|nixos --snapshot ID FILE",
		Short: "Publish a nixexprs.tar.xz as an immutable channel snapshot",
		Long: `push validates FILE the way Nix will use it (xz-compressed tar with exactly one
top-level directory containing default.nix; only files, folders and symlinks,
none replacing another; within [channels] max_tarball_size,
max_tarball_entries and max_tarball_unpacked_size) and publishes it as snapshot ID of channel NAME.
Re-publishing an ID with the same bytes does nothing; with different bytes it
is refused. The channel's current snapshot moves to ID only if ID is newer
(Nix version order when both IDs contain numbers, else upload order), unless
--force. Prints the fetchTarball sha256 of the snapshot. A virtual
repository takes no channel snapshots (it serves its members' paths): naming
one is refused.

When the static site is on ([site] disabled is not set) and shows R, push
then brings the site's channel pages up to date: an incremental catalog
update (as "nixrepo index": the listing of every repository's narinfos, plus
reading the new snapshot's store-paths.xz and packages.json.br) and a site
render (as "nixrepo publish" renders it; only changed objects are written).
--no-site skips that, leaving it to the next run or publish.`,
		Example: `  nixrepo channel push --repo nix-local --channel team --flavor nixpkgs --snapshot 2026.11.27 nixexprs.tar.xz`,
		Args:    exactArgs(1, "the nixexprs.tar.xz FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if repoName == "" || chName == "" || snapshot == "" {
				return usageError{errors.New("channel push: --repo, --channel and --snapshot are required")}
			}
			cfg, r, err := a.configRepo(repoName)
			if err != nil {
				return err
			}
			if err := r.ChannelPushError(); err != nil {
				return usageError{fmt.Errorf("channel push: %w", err)}
			}
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("channel push: %w", err)
			}
			defer f.Close()
			extra := map[string][]byte{}
			for name, file := range map[string]string{store.ChannelGitRevision: gitRev, store.ChannelStorePaths: storePaths} {
				if file == "" {
					continue
				}
				b, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("channel push: %w", err)
				}
				extra[name] = b
			}
			res, err := channel.Push(cmd.Context(), st.Repo(r.Name), f, channel.PushOptions{
				Channel: chName, Flavor: flavor, Snapshot: snapshot, Extra: extra, Force: force,
				Keep: r.ChannelKeep, Pins: r.ChannelPins, Tarball: tarballLimits(cfg),
			})
			if err != nil {
				return fmt.Errorf("channel push: %w", err)
			}
			var site *publish.AllReport
			if opts := siteOptions(cfg); opts != nil && !noSite && slices.Contains(opts.Repos, r.Name) {
				// The snapshot is published: a failure from here on is
				// reported, and the next run or publish repairs it.
				site, err = publish.All(cmd.Context(), st, publish.Plan{Index: a.indexStep(cfg, a.indexDir(cfg, ""), false), Site: opts})
				if err != nil {
					return fmt.Errorf("channel push: snapshot %s published, but the site was not updated: %w", snapshot, err)
				}
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			state := "published"
			if !res.Created {
				state = "already published (identical)"
			}
			fmt.Fprintf(a.stdout, "%s/%s snapshot %s %s; sha256 %s; current snapshot: %s\n", r.Name, chName, snapshot, state, res.Snapshot.NarHash, res.Latest)
			if len(res.Pruned) > 0 {
				fmt.Fprintf(a.stdout, "retention removed: %s\n", strings.Join(res.Pruned, ", "))
			}
			if site != nil {
				fmt.Fprintf(a.stdout, "site: catalog generation %d (%.2fs), %d object(s) written or removed under %s\n",
					site.Index.Generation, site.Index.Seconds, max(site.Site, 0), store.SitePrefix)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&repoName, "repo", "r", "", "repository (required)")
	cmd.Flags().StringVar(&chName, "channel", "", "channel name (required)")
	cmd.Flags().StringVar(&flavor, "flavor", "nixpkgs", "nixpkgs or nixos")
	cmd.Flags().StringVar(&snapshot, "snapshot", "", "snapshot ID, e.g. a version or date (required)")
	cmd.Flags().StringVar(&gitRev, "git-revision", "", "file holding the git revision to keep with the snapshot")
	cmd.Flags().StringVar(&storePaths, "store-paths", "", "store-paths.xz to keep with the snapshot")
	cmd.Flags().BoolVar(&force, "force", false, "make this the current snapshot even if it is older")
	cmd.Flags().BoolVar(&noSite, "no-site", false, "do not update the catalog and the static site after the push")
	return cmd
}

func newChannelListCmd(a *app) *cobra.Command {
	var repoName, base string
	cmd := &cobra.Command{
		Use:   "list [--repo R] [--url BASE]",
		Short: "List channels with their current snapshot and nix-channel line",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.printChannels(cmd.Context(), repoName, "", base, false)
		},
	}
	cmd.Flags().StringVarP(&repoName, "repo", "r", "", "only this repository")
	cmd.Flags().StringVar(&base, "url", "https://HOST", "URL where the server or the bucket is served, for the printed lines")
	return cmd
}

func newChannelShowCmd(a *app) *cobra.Command {
	var repoName, chName, base string
	cmd := &cobra.Command{
		Use:   "show --repo R --channel NAME [--url BASE]",
		Short: "Show a channel's snapshots with their immutable URLs and fetchTarball sha256",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if repoName == "" || chName == "" {
				return usageError{errors.New("channel show: --repo and --channel are required")}
			}
			return a.printChannels(cmd.Context(), repoName, chName, base, true)
		},
	}
	cmd.Flags().StringVarP(&repoName, "repo", "r", "", "repository (required)")
	cmd.Flags().StringVar(&chName, "channel", "", "channel (required)")
	cmd.Flags().StringVar(&base, "url", "https://HOST", "URL where the server or the bucket is served, for the printed lines")
	return cmd
}

// tarballLimits maps [channels] to the limits of the channel tarballs
// that push, serve and mirror accept.
func tarballLimits(cfg *config.Config) channel.TarballLimits {
	return channel.TarballLimits{MaxEntries: cfg.Channels.MaxTarballEntries, MaxUnpackedSize: int64(cfg.Channels.MaxTarballUnpackedSize),
		MaxSize: int64(cfg.Channels.MaxTarballSize)}
}

// configRepo loads the config and finds repository name (an unknown name
// is a usage error).
func (a *app) configRepo(name string) (*config.Config, *config.Repo, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	r, err := cfg.Repo(name)
	if err != nil {
		return nil, nil, usageError{err}
	}
	return cfg, r, nil
}

// openRepo loads the config, finds repository name and opens the store.
func (a *app) openRepo(ctx context.Context, name string) (*config.Config, *config.Repo, *store.Store, error) {
	cfg, r, err := a.configRepo(name)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, r, st, nil
}

// channelView is what list/show/setmeup print for one channel.
type channelView struct {
	Repo             string         `json:"repo"`
	Channel          string         `json:"channel"`
	Latest           string         `json:"latest"`
	NixChannel       string         `json:"nixChannel"`       // server form
	NixChannelStatic string         `json:"nixChannelStatic"` // static-hosting form
	Snapshots        []snapshotView `json:"snapshots,omitempty"`
}

type snapshotView struct {
	store.Snapshot
	URL       string `json:"url"`       // server form
	StaticURL string `json:"staticUrl"` // static-hosting form
	Current   bool   `json:"current"`
}

func (a *app) channelViews(ctx context.Context, repoName, channel, base string, withSnapshots bool) ([]channelView, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	st, err := a.openStoreToRead(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	base = strings.TrimSuffix(base, "/")
	var views []channelView
	for _, r := range cfg.Repos {
		if repoName != "" && r.Name != repoName {
			continue
		}
		repo := st.Repo(r.Name)
		names := []string{channel}
		if channel == "" {
			if names, err = repo.ListChannels(ctx); err != nil {
				return nil, err
			}
		}
		for _, n := range names {
			ch, err := repo.ReadChannel(ctx, n)
			if errors.Is(err, store.ErrNotFound) && channel != "" {
				return nil, fmt.Errorf("repository %s has no channel %q", r.Name, n)
			}
			if err != nil {
				return nil, err
			}
			srv := fmt.Sprintf("%s/api/nix/%s/%s", base, r.Name, store.ChannelRel(n))
			static := fmt.Sprintf("%s/%s/%s", base, r.Name, store.ChannelLatestRel(n))
			v := channelView{Repo: r.Name, Channel: n, Latest: ch.Latest,
				NixChannel: "nix-channel --add " + srv + " " + n, NixChannelStatic: "nix-channel --add " + static + " " + n}
			if withSnapshots {
				for _, s := range ch.InOrder() { // the channel's own order, newest first
					rel := store.SnapshotFileRel(n, s.Flavor, s.ID, store.ChannelTarball)
					v.Snapshots = append(v.Snapshots, snapshotView{Snapshot: s, Current: s.ID == ch.Latest,
						URL: fmt.Sprintf("%s/api/nix/%s/%s", base, r.Name, rel), StaticURL: fmt.Sprintf("%s/%s/%s", base, r.Name, rel)})
				}
			}
			views = append(views, v)
		}
	}
	return views, nil
}

func (a *app) printChannels(ctx context.Context, repoName, channel, base string, withSnapshots bool) error {
	views, err := a.channelViews(ctx, repoName, channel, base, withSnapshots)
	if err != nil {
		return err
	}
	if a.jsonOut {
		if views == nil {
			views = []channelView{}
		}
		return a.printJSON(views)
	}
	if len(views) == 0 {
		fmt.Fprintln(a.stdout, "no channels")
		return nil
	}
	for _, v := range views {
		writeChannelView(a.stdout, v)
	}
	return nil
}

func writeChannelView(w io.Writer, v channelView) {
	fmt.Fprintf(w, "%s/%s: current snapshot %s\n", v.Repo, v.Channel, v.Latest)
	fmt.Fprintf(w, "  # nixrepo serve:\n  %s\n  # static hosting of the bucket:\n  %s\n", v.NixChannel, v.NixChannelStatic)
	for _, s := range v.Snapshots {
		mark := ""
		if s.Current {
			mark = " (current)"
		}
		fmt.Fprintf(w, "  snapshot %s%s, %s, %d bytes, uploaded %s\n", s.ID, mark, s.Flavor, s.Size, s.Uploaded.Format("2006-01-02 15:04"))
		fmt.Fprintf(w, "    builtins.fetchTarball { url = %q; sha256 = %q; }\n", s.URL, s.NarHash)
		fmt.Fprintf(w, "    # static: url = %q\n", s.StaticURL)
	}
}
