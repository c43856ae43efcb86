package channel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/nixrepo/nixrepo/internal/compress"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// ParseStorePaths reads store paths, one per line (absolute or basenames;
// blank lines and # comments ignored), as in a channel's store-paths.xz.
// A line that is no store path is a *StorePathListError.
func ParseStorePaths(text string) ([]nix.StorePath, error) {
	return scanStorePaths(strings.NewReader(text))
}

// StorePathListError is a line of a store path list that is not a store
// path (or is longer than one can be).
type StorePathListError struct {
	Line int
	Err  error
}

func (e *StorePathListError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *StorePathListError) Unwrap() error { return e.Err }

// maxStorePathLine bounds a line of a store path list: a store path is at
// most 44 + 211 bytes.
const maxStorePathLine = 4096

// ReadStorePaths reads a list of store paths as ParseStorePaths does from r,
// compressed with compression ("xz", "none", …: see compress.NewReader),
// streaming: at most nix.MaxStorePathsSize decoded bytes (past them, an
// error wrapping compress.ErrTooLarge; the list is never cut short) and
// lines of at most 4096 bytes (a *StorePathListError). Corrupt data wraps
// compress.ErrCorrupt.
func ReadStorePaths(r io.Reader, compression string) ([]nix.StorePath, error) {
	return readStorePaths(r, compression, nix.MaxStorePathsSize)
}

func readStorePaths(r io.Reader, compression string, limit int64) ([]nix.StorePath, error) {
	dr, err := compress.NewReaderOptions(r, compression, compress.Options{MaxOutput: limit})
	if err != nil {
		return nil, err
	}
	defer dr.Close()
	return scanStorePaths(dr)
}

func scanStorePaths(r io.Reader) ([]nix.StorePath, error) {
	var out []nix.StorePath
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxStorePathLine)
	i := 0
	for sc.Scan() {
		i++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var p nix.StorePath
		var err error
		if strings.HasPrefix(line, "/") {
			p, err = nix.ParseStorePath(line)
		} else {
			p, err = nix.ParseStorePathBase(line)
		}
		if err != nil {
			return nil, &StorePathListError{Line: i, Err: err}
		}
		out = append(out, p)
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return nil, &StorePathListError{Line: i + 1, Err: fmt.Errorf("longer than %d bytes, more than a store path can be", maxStorePathLine)}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// SnapshotStorePaths returns the store paths of channel's current snapshot
// in repo (its store-paths.xz), read as ReadStorePaths does.
func SnapshotStorePaths(ctx context.Context, repo *store.Cache, channel string) ([]nix.StorePath, error) {
	ch, err := repo.ReadChannel(ctx, channel)
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", channel, err)
	}
	cur, ok := ch.Current()
	if !ok || !slices.Contains(cur.Files, store.ChannelStorePaths) {
		return nil, fmt.Errorf("channel %s has no %s in its current snapshot", channel, store.ChannelStorePaths)
	}
	rd, err := repo.NewReader(ctx, store.SnapshotFileRel(channel, cur.Flavor, cur.ID, store.ChannelStorePaths))
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", channel, err)
	}
	defer rd.Close()
	paths, err := ReadStorePaths(rd, "xz")
	if err != nil {
		return nil, fmt.Errorf("channel %s: %s: %w", channel, store.ChannelStorePaths, err)
	}
	return paths, nil
}
