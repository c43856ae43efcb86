package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nixrepo/nixrepo/internal/nix"
)

// Channels live in a repository under channels/:
//
//	channels/NAME/FLAVOR/ID/nixexprs.tar.xz   an immutable snapshot (+ SnapshotFiles)
//	channels/NAME/channel.json                the channel's state (Channel)
//	channels/NAME/nixexprs.tar.xz             the current snapshot's tarball, copied

// Files a snapshot may carry: the tarball, and beside it metadata.
const (
	ChannelTarball     = "nixexprs.tar.xz"
	ChannelGitRevision = "git-revision"
	ChannelStorePaths  = "store-paths.xz"
	ChannelPackages    = "packages.json.br"
)

// SnapshotFiles lists the files of a snapshot, tarball first.
var SnapshotFiles = []string{ChannelTarball, ChannelGitRevision, ChannelStorePaths, ChannelPackages}

// ChannelsDir holds a repository's channels.
const ChannelsDir = "channels/"

// ChannelStateFile is the name of a channel's state in its folder.
const ChannelStateFile = "channel.json"

// MaxChannelStateSize bounds a channel's state file,
// R/channels/NAME/channel.json, which is read whole: 16 MiB, room for tens
// of thousands of snapshots. Readers stop there (GetLimit) and the writer
// refuses to grow a state past it.
const MaxChannelStateSize = 16 << 20

// ErrCorrupt: a stored object nixrepo wrote does not decode.
var ErrCorrupt = errors.New("corrupt")

// Snapshot is one immutable published version of a channel, as
// channel.json records it.
type Snapshot struct {
	ID     string `json:"id"`
	Flavor string `json:"flavor"`
	// NarHash is the sha256 (nix32) of the unpacked tree's NAR: what
	// builtins.fetchTarball's sha256 and nix-prefetch-url --unpack give.
	NarHash string `json:"narHash"`
	// FileHash is the sha256 (hex) of nixexprs.tar.xz itself.
	FileHash    string    `json:"fileHash"`
	Size        int64     `json:"size"`
	Uploaded    time.Time `json:"uploaded"`
	GitRevision string    `json:"gitRevision,omitempty"`
	Files       []string  `json:"files"`
	// Source names where a mirrored snapshot came from.
	Source string `json:"source,omitempty"`
}

// Channel is a channel's state, kept at R/channels/NAME/channel.json.
type Channel struct {
	Name      string     `json:"name"`
	Latest    string     `json:"latest"`
	Snapshots []Snapshot `json:"snapshots"` // oldest upload first
}

// Snapshot returns the snapshot with the given ID.
func (c *Channel) Snapshot(id string) (*Snapshot, bool) {
	for i := range c.Snapshots {
		if c.Snapshots[i].ID == id {
			return &c.Snapshots[i], true
		}
	}
	return nil, false
}

// Current returns the latest snapshot, if any.
func (c *Channel) Current() (*Snapshot, bool) { return c.Snapshot(c.Latest) }

// InOrder returns the channel's snapshots newest first, in the channel's
// own order: by Nix's version order of their IDs when every ID carries a
// number (20240101, 1.2.3, nixos-25.11.1234.abcdef, as the current
// snapshot moves), else by upload order. Equal versions keep upload order.
func (c *Channel) InOrder() []Snapshot {
	out := slices.Clone(c.Snapshots)
	slices.Reverse(out) // newest upload first
	if !slices.ContainsFunc(out, func(s Snapshot) bool { return !LooksLikeVersion(s.ID) }) {
		slices.SortStableFunc(out, func(a, b Snapshot) int { return nix.CompareVersions(b.ID, a.ID) })
	}
	return out
}

// LooksLikeVersion reports whether a snapshot ID carries a number, so that
// snapshots are ordered (and the current one moves) by Nix's version order.
func LooksLikeVersion(id string) bool { return strings.ContainsAny(id, "0123456789") }

// ChannelRel is a channel's name relative to its repository,
// channels/NAME (a folder, and the server's route to the channel).
func ChannelRel(name string) string { return ChannelsDir + name }

// ChannelDir is the folder of a channel, channels/NAME/.
func ChannelDir(name string) string { return ChannelRel(name) + "/" }

// SnapshotRel is the folder of a snapshot: channels/NAME/FLAVOR/SNAPSHOT/.
func SnapshotRel(name, flavor, id string) string {
	return ChannelDir(name) + flavor + "/" + id + "/"
}

// SnapshotFileRel is the file of a snapshot, channels/NAME/FLAVOR/SNAPSHOT/FILE.
func SnapshotFileRel(name, flavor, id, file string) string {
	return SnapshotRel(name, flavor, id) + file
}

// ChannelStateRel is channels/NAME/channel.json.
func ChannelStateRel(name string) string { return ChannelDir(name) + ChannelStateFile }

// ChannelLatestRel is the mutable tarball of the current snapshot,
// channels/NAME/nixexprs.tar.xz: a URL ending in .tar.xz, which nix-channel
// and fetchTarball unpack directly, so it works on any static host.
func ChannelLatestRel(name string) string { return ChannelDir(name) + ChannelTarball }

// ChannelName is the channel a cache-relative name belongs to, and the
// name's rest after channels/NAME/ split at "/": "channels/a/nixos/1/x"
// gives "a" and ["nixos", "1", "x"]. ok is false outside channels/.
func ChannelName(rel string) (name string, rest []string, ok bool) {
	in, ok := strings.CutPrefix(rel, ChannelsDir)
	if !ok {
		return "", nil, false
	}
	parts := strings.Split(in, "/")
	return parts[0], parts[1:], true
}

// ReadChannel returns a channel's state. A channel never published is
// ErrNotFound, a state larger than MaxChannelStateSize ErrTooLarge, and one
// that does not decode ErrCorrupt.
func (c *Cache) ReadChannel(ctx context.Context, name string) (*Channel, error) {
	b, err := c.GetLimit(ctx, ChannelStateRel(name), MaxChannelStateSize)
	if err != nil {
		return nil, err
	}
	var ch Channel
	if err := json.Unmarshal(b, &ch); err != nil {
		return nil, fmt.Errorf("channel %s: %w state: %w", name, ErrCorrupt, err)
	}
	return &ch, nil
}

// UpdateChannel changes channel name's state by compare-and-swap (see
// Store.Update): fn gets the current state (an empty Channel named name when
// there is none) and changes it in place, or returns ErrUnchanged to leave
// it. When another writer changed the state in between, fn is called again
// on the new state, so it must change nothing but ch. The state is written
// as indented JSON ending in LF; one that would pass MaxChannelStateSize is
// refused. UpdateChannel returns the state as written (or as read, when fn
// left it unchanged).
func (c *Cache) UpdateChannel(ctx context.Context, name string, fn func(ch *Channel) error) (*Channel, error) {
	var result *Channel
	err := c.Update(ctx, ChannelStateRel(name), &WriteOptions{ContentType: ContentTypeJSON}, func(old []byte) ([]byte, error) {
		ch := &Channel{Name: name}
		if old != nil {
			if len(old) > MaxChannelStateSize {
				return nil, fmt.Errorf("channel %s: its state is %d bytes, more than the %d a state may have", name, len(old), MaxChannelStateSize)
			}
			if err := json.Unmarshal(old, ch); err != nil {
				return nil, fmt.Errorf("channel %s: %w state: %w", name, ErrCorrupt, err)
			}
		}
		result = ch
		if err := fn(ch); err != nil {
			return nil, err
		}
		b, err := json.MarshalIndent(ch, "", "  ")
		if err != nil {
			return nil, err
		}
		if len(b)+1 > MaxChannelStateSize {
			return nil, fmt.Errorf("channel %s: its state would be %d bytes, more than the %d a state may have: keep fewer snapshots (channel_keep)", ch.Name, len(b)+1, MaxChannelStateSize)
		}
		return append(b, '\n'), nil
	})
	return result, err
}

// ListChannels returns the names of the repository's channels, sorted.
func (c *Cache) ListChannels(ctx context.Context) ([]string, error) {
	var names []string
	err := c.List(ctx, ChannelsDir, true, func(o Object) error {
		if o.Dir {
			names = append(names, strings.TrimSuffix(strings.TrimPrefix(o.Key, ChannelsDir), "/"))
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}

// DeleteSnapshot removes the files of snapshot id of a channel, whatever
// its flavor; errors are ignored (what is left is unreferenced).
func (c *Cache) DeleteSnapshot(ctx context.Context, channel, id string) {
	prefix := ChannelDir(channel)
	_ = c.List(ctx, prefix, false, func(o Object) error {
		parts := strings.Split(strings.TrimPrefix(o.Key, prefix), "/")
		if len(parts) == 3 && parts[1] == id {
			_ = c.Delete(ctx, o.Key)
		}
		return nil
	})
}

// SnapshotContentType is the content type a snapshot file is stored with.
func SnapshotContentType(name string) string {
	switch name {
	case ChannelTarball:
		return "application/x-xz"
	case ChannelGitRevision:
		return "text/plain; charset=utf-8"
	case ChannelPackages:
		return ContentTypeJSON
	}
	return "application/octet-stream"
}
