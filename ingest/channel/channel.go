package channel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// Channel flavors: what the tarball is (nixos channels carry NixOS too).
var Flavors = []string{"nixpkgs", "nixos"}

// channelLocks make the pushes to one channel through one Store take turns,
// which spares retries of the compare-and-swap on the channel's state; they
// are not what makes concurrent pushes safe (other processes do not see
// them), the bucket's conditional writes are.
var channelLocks sync.Map

func lockChannel(repo *store.Cache, name string) func() {
	v, _ := channelLocks.LoadOrStore(fmt.Sprintf("%p %s", repo.Store(), repo.Key(store.ChannelDir(name))), &sync.Mutex{})
	m := v.(*sync.Mutex)
	m.Lock()
	return m.Unlock
}

// PushOptions describe a snapshot to publish.
type PushOptions struct {
	Channel, Flavor, Snapshot string
	// Extra files (git-revision, store-paths.xz, packages.json.br) by name.
	Extra map[string][]byte
	// Force makes the snapshot current even if it is older than the current one.
	Force bool
	// MaxSize, when positive and below Tarball.MaxSize, bounds the
	// tarball instead (the server's max_object_size).
	MaxSize int64
	// Tarball bounds what the tarball unpacks to (zero fields: defaults).
	Tarball TarballLimits
	// Keep and Pins apply retention after the push (Keep 0: keep all).
	Keep int
	Pins []string
	// Source is recorded for mirrored snapshots.
	Source string
	// AdmitUnpack, when set, is called once the tarball is spooled, before
	// it is unpacked: the unpack starts when it returns and release is
	// called when the unpack ends. An error refuses the push (it is
	// returned as it is). The server bounds concurrent unpacks with it.
	AdmitUnpack func(ctx context.Context) (release func(), err error)
}

// PushResult says what Push did.
type PushResult struct {
	Snapshot store.Snapshot `json:"snapshot"`
	Created  bool           `json:"created"` // false: the identical snapshot existed
	Latest   string         `json:"latest"`  // the channel's current snapshot afterwards
	Moved    bool           `json:"moved"`   // the current snapshot changed
	Pruned   []string       `json:"pruned,omitempty"`
}

// Push validates tarball as Nix will use it (xz; a tar with exactly
// one top-level directory containing default.nix; only files, folders and
// symlinks, none escaping or replacing another; within o.Tarball's limits)
// and publishes it as an immutable snapshot. The same ID with the same bytes
// is a no-op; with different bytes it is ingest.ErrConflict. The channel's current snapshot moves forward only: by Nix
// version order of snapshot IDs when both look like versions, else by upload
// order; Force moves it regardless. Snapshot files are written first, then
// the channel state, then the mutable latest tarball.
func Push(ctx context.Context, repo *store.Cache, tarball io.Reader, o PushOptions) (*PushResult, error) {
	if !nix.ValidChannelName(o.Channel) {
		return nil, fmt.Errorf("%w: channel name %q (letters, digits, '_', '.', '+', '-')", ingest.ErrInvalid, o.Channel)
	}
	if !nix.ValidChannelName(o.Snapshot) {
		return nil, fmt.Errorf("%w: snapshot ID %q (letters, digits, '_', '.', '+', '-')", ingest.ErrInvalid, o.Snapshot)
	}
	if o.Flavor != "nixpkgs" && o.Flavor != "nixos" {
		return nil, fmt.Errorf("%w: flavor %q (nixpkgs or nixos)", ingest.ErrInvalid, o.Flavor)
	}
	for name := range o.Extra {
		if name == store.ChannelTarball || !slices.Contains(store.SnapshotFiles, name) {
			return nil, fmt.Errorf("%w: a snapshot may carry %s besides the tarball, not %q", ingest.ErrInvalid, strings.Join(store.SnapshotFiles[1:], ", "), name)
		}
	}
	o.Tarball = o.Tarball.withDefaults()
	maxSize, sizeKey := o.Tarball.MaxSize, "max_tarball_size"
	if o.MaxSize > 0 && o.MaxSize < maxSize {
		maxSize, sizeKey = o.MaxSize, "max_object_size"
	}
	// Spool the upload to a temporary file while hashing it: it is read
	// twice (validation, then storage) and must be complete before anything
	// becomes visible.
	tmp, err := os.CreateTemp("", "nixrepo-channel-*.tar.xz")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	fh := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, fh), io.LimitReader(tarball, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the tarball: %v", ingest.ErrInvalid, err)
	}
	if n > maxSize {
		return nil, fmt.Errorf("%w: %s is more than %d bytes (%s)", ingest.ErrTooLarge, store.ChannelTarball, maxSize, sizeKey)
	}
	fileHash := fmt.Sprintf("%x", fh.Sum(nil))
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	release := func() {}
	if o.AdmitUnpack != nil {
		if release, err = o.AdmitUnpack(ctx); err != nil {
			return nil, err
		}
	}
	narHash, err := checkChannelTarball(tmp, o.Tarball)
	release()
	if err != nil {
		// A tarball past its limits is also ingest.ErrTooLarge.
		return nil, fmt.Errorf("%w: %s is not a usable channel tarball: %w", ingest.ErrMismatch, store.ChannelTarball, err)
	}

	// Within a process, pushes to one channel take turns (fewer retries of
	// the compare-and-swap below); across processes the bucket decides.
	unlock := lockChannel(repo, o.Channel)
	defer unlock()
	// 1. The snapshot's files, write-once: of two pushes of one ID with
	// different bytes, through any processes, exactly one creates them.
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if err := ingest.PutOnce(ctx, repo, store.SnapshotFileRel(o.Channel, o.Flavor, o.Snapshot, store.ChannelTarball), tmp, store.SnapshotContentType(store.ChannelTarball)); err != nil {
		if errors.Is(err, ingest.ErrConflict) {
			return nil, fmt.Errorf("%w: snapshot %s of channel %s exists with a different %s; snapshots are immutable: publish a new snapshot ID", ingest.ErrConflict, o.Snapshot, o.Channel, store.ChannelTarball)
		}
		return nil, err
	}
	var extras []string
	for _, name := range store.SnapshotFiles[1:] {
		b, ok := o.Extra[name]
		if !ok {
			continue
		}
		if err := ingest.PutOnce(ctx, repo, store.SnapshotFileRel(o.Channel, o.Flavor, o.Snapshot, name), bytes.NewReader(b), store.SnapshotContentType(name)); err != nil {
			if errors.Is(err, ingest.ErrConflict) {
				return nil, fmt.Errorf("%w: snapshot %s of channel %s already has a different %s; snapshots are immutable", ingest.ErrConflict, o.Snapshot, o.Channel, name)
			}
			return nil, err
		}
		extras = append(extras, name)
	}
	// 2. The channel's state, by compare-and-swap: a push through another
	// process in between is read and kept, never overwritten.
	res := &PushResult{}
	ch, err := repo.UpdateChannel(ctx, o.Channel, func(ch *store.Channel) error {
		*res = PushResult{}
		if old, ok := ch.Snapshot(o.Snapshot); ok {
			if old.FileHash != fileHash || old.Flavor != o.Flavor {
				return fmt.Errorf("%w: snapshot %s of channel %s exists with different contents (tarball sha256 %s, flavor %s); snapshots are immutable: publish a new snapshot ID", ingest.ErrConflict, o.Snapshot, o.Channel, old.FileHash, old.Flavor)
			}
			res.Snapshot = *old
		} else {
			snap := store.Snapshot{ID: o.Snapshot, Flavor: o.Flavor, NarHash: narHash, FileHash: fileHash, Size: n,
				Uploaded: time.Now().UTC().Truncate(time.Second), Files: append([]string{store.ChannelTarball}, extras...), Source: o.Source}
			if b, ok := o.Extra[store.ChannelGitRevision]; ok {
				snap.GitRevision = strings.TrimSpace(string(b))
			}
			ch.Snapshots = append(ch.Snapshots, snap)
			res.Snapshot, res.Created = snap, true
		}
		if cur, ok := ch.Current(); !ok || o.Force || (cur.ID != o.Snapshot && newer(o.Snapshot, cur.ID, res.Created)) {
			res.Moved = ch.Latest != o.Snapshot
			ch.Latest = o.Snapshot
		}
		res.Latest = ch.Latest
		res.Pruned = prune(ch, o.Keep, o.Pins)
		if !res.Created && !res.Moved && len(res.Pruned) == 0 {
			return store.ErrUnchanged
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// 3. The channel's mutable tarball follows its state.
	if res.Moved {
		if err := syncChannelTarball(ctx, repo, ch.Name); err != nil {
			return nil, err
		}
	}
	for _, id := range res.Pruned {
		repo.DeleteSnapshot(ctx, o.Channel, id)
	}
	return res, nil
}

// syncChannelTarball copies the channel's current snapshot tarball to the
// channel's mutable tarball, and again while the channel's state moved on
// during the copy: whichever process copies last has seen the current
// snapshot after its copy, so the tarball converges on the state.
func syncChannelTarball(ctx context.Context, repo *store.Cache, name string) error {
	copied := ""
	for attempt := 0; attempt < 20; attempt++ {
		ch, err := repo.ReadChannel(ctx, name)
		if err != nil {
			return err
		}
		cur, ok := ch.Current()
		if !ok || cur.ID == copied {
			return nil
		}
		if err := repo.Copy(ctx, store.ChannelLatestRel(name), store.SnapshotFileRel(name, cur.Flavor, cur.ID, store.ChannelTarball)); err != nil {
			return err
		}
		copied = cur.ID
	}
	return fmt.Errorf("channel %s: its current snapshot kept changing while its tarball was copied", name)
}

// newer decides whether snapshot id should replace current as the latest:
// by Nix version order when both IDs look like versions, else by upload
// order (a new upload is newer).
func newer(id, current string, isNewUpload bool) bool {
	if store.LooksLikeVersion(id) && store.LooksLikeVersion(current) {
		return nix.CompareVersions(id, current) > 0
	}
	return isNewUpload
}

// prune applies retention: keep the newest keep snapshots (by upload order)
// plus the current one and pinned ones. It returns the IDs dropped from ch.
func prune(ch *store.Channel, keep int, pins []string) []string {
	if keep <= 0 || len(ch.Snapshots) <= keep {
		return nil
	}
	retained := map[string]bool{ch.Latest: true}
	for _, p := range pins {
		if c, id, ok := strings.Cut(p, "/"); ok && c == ch.Name {
			retained[id] = true
		}
	}
	for _, s := range ch.Snapshots[len(ch.Snapshots)-keep:] {
		retained[s.ID] = true
	}
	var kept []store.Snapshot
	var dropped []string
	for _, s := range ch.Snapshots {
		if retained[s.ID] {
			kept = append(kept, s)
		} else {
			dropped = append(dropped, s.ID)
		}
	}
	ch.Snapshots = kept
	return dropped
}

// AddSnapshotFile adds a metadata file (git-revision, store-paths.xz,
// packages.json.br) to an existing snapshot. Snapshots are immutable: a file
// the snapshot already has may only be sent again with the same bytes.
func AddSnapshotFile(ctx context.Context, repo *store.Cache, channel, flavor, id, name string, data []byte) error {
	if name == store.ChannelTarball || !slices.Contains(store.SnapshotFiles, name) {
		return fmt.Errorf("%w: a snapshot holds %s; %q is not one of them", ingest.ErrInvalid, strings.Join(store.SnapshotFiles, ", "), name)
	}
	unlock := lockChannel(repo, channel)
	defer unlock()
	ch, err := repo.ReadChannel(ctx, channel)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: channel %s has no snapshot %s yet: upload %s first", ingest.ErrMismatch, channel, id, store.ChannelTarball)
	}
	if err != nil {
		return err
	}
	if snap, ok := ch.Snapshot(id); !ok || snap.Flavor != flavor {
		return fmt.Errorf("%w: channel %s has no %s snapshot %s yet: upload %s first", ingest.ErrMismatch, channel, flavor, id, store.ChannelTarball)
	}
	if err := ingest.PutOnce(ctx, repo, store.SnapshotFileRel(channel, flavor, id, name), bytes.NewReader(data), store.SnapshotContentType(name)); err != nil {
		if errors.Is(err, ingest.ErrConflict) {
			return fmt.Errorf("%w: snapshot %s already has a different %s; snapshots are immutable", ingest.ErrConflict, id, name)
		}
		return err
	}
	_, err = repo.UpdateChannel(ctx, channel, func(ch *store.Channel) error {
		snap, ok := ch.Snapshot(id)
		if !ok {
			return fmt.Errorf("%w: channel %s no longer has snapshot %s", ingest.ErrMismatch, channel, id)
		}
		if slices.Contains(snap.Files, name) {
			return store.ErrUnchanged
		}
		snap.Files = append(snap.Files, name)
		if name == store.ChannelGitRevision {
			snap.GitRevision = strings.TrimSpace(string(data))
		}
		return nil
	})
	return err
}
