package channel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// MirrorOptions tune Mirror.
type MirrorOptions struct {
	// Client fetches from upstream; nil uses a client with a 10-minute
	// timeout.
	Client *http.Client
	// Keep and Pins apply retention (see PushOptions).
	Keep int
	Pins []string
	// Tarball bounds what a release's tarball unpacks to (see PushOptions).
	Tarball TarballLimits
}

// MirrorResult reports one channel.
type MirrorResult struct {
	Channel string `json:"channel"`
	Release string `json:"release"` // the upstream release the channel points to
	// Outcome: "mirrored", "up-to-date" (already have it) or "behind"
	// (upstream points to an older release than ours; nothing changed).
	Outcome string      `json:"outcome"`
	Bytes   int64       `json:"bytes"`
	Push    *PushResult `json:"push,omitempty"`
}

// Mirror mirrors the current release of an upstream channel laid out
// like channels.nixos.org: <base>/<channel> redirects to the release folder,
// whose last path segment is the release name (used as the snapshot ID) and
// which holds nixexprs.tar.xz (required; its .sha256 is checked when
// present), git-revision, store-paths.xz and packages.json.br. A release
// already mirrored is skipped without downloading; a release older than the
// channel's current snapshot never moves the channel.
func Mirror(ctx context.Context, repo *store.Cache, base, channel string, o *MirrorOptions) (*MirrorResult, error) {
	if o == nil {
		o = &MirrorOptions{}
	}
	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: 600e9}
	}
	res := &MirrorResult{Channel: channel}
	releaseURL, err := resolveRelease(ctx, client, strings.TrimSuffix(base, "/")+"/"+channel)
	if err != nil {
		return nil, fmt.Errorf("mirror %s: %w", channel, err)
	}
	res.Release = path.Base(releaseURL.Path)
	if !nix.ValidChannelName(res.Release) {
		return nil, fmt.Errorf("mirror %s: upstream release name %q is not a valid snapshot ID", channel, res.Release)
	}
	ch, err := repo.ReadChannel(ctx, channel)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if ch != nil {
		if _, ok := ch.Snapshot(res.Release); ok {
			res.Outcome = "up-to-date"
			return res, nil
		}
		if cur, ok := ch.Current(); ok && nix.CompareVersions(res.Release, cur.ID) < 0 {
			res.Outcome = "behind"
			return res, nil
		}
	}
	rel := strings.TrimSuffix(releaseURL.String(), "/")
	lim := o.Tarball.withDefaults()
	tarball, size, got, err := download(ctx, client, rel+"/"+store.ChannelTarball, lim.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("mirror %s: %w", channel, err)
	}
	defer os.Remove(tarball.Name())
	defer tarball.Close()
	res.Bytes += size
	if sum, err := fetch(ctx, client, rel+"/"+store.ChannelTarball+".sha256", false, maxChecksumFile); err != nil {
		return nil, fmt.Errorf("mirror %s: %w", channel, err)
	} else if sum != nil {
		want := strings.Fields(string(sum))
		if len(want) == 0 || !strings.EqualFold(want[0], hex.EncodeToString(got)) {
			return nil, fmt.Errorf("mirror %s: %s does not match its published sha256 (%s); not mirrored", channel, store.ChannelTarball, strings.TrimSpace(string(sum)))
		}
	}
	extra := map[string][]byte{}
	for _, name := range store.SnapshotFiles[1:] {
		b, err := fetch(ctx, client, rel+"/"+name, false, maxMirroredFile)
		if err != nil {
			return nil, fmt.Errorf("mirror %s: %w", channel, err)
		}
		if b != nil {
			extra[name] = b
			res.Bytes += int64(len(b))
		}
	}
	flavor := "nixpkgs"
	if strings.HasPrefix(channel, "nixos") {
		flavor = "nixos"
	}
	if _, err := tarball.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	push, err := Push(ctx, repo, tarball, PushOptions{
		Channel: channel, Flavor: flavor, Snapshot: res.Release, Extra: extra,
		Keep: o.Keep, Pins: o.Pins, Source: rel, Tarball: o.Tarball,
	})
	if err != nil {
		return nil, fmt.Errorf("mirror %s: release %s: %w", channel, res.Release, err)
	}
	res.Outcome, res.Push = "mirrored", push
	return res, nil
}

// resolveRelease follows the channel URL's redirects (up to 10, like Nix)
// and returns the final URL, which must answer 200.
func resolveRelease(ctx context.Context, client *http.Client, u string) (*url.URL, error) {
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cur, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	for hop := 0; hop <= 10; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cur.String(), nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				return nil, fmt.Errorf("%s: redirect without Location", cur)
			}
			cur = loc
		case resp.StatusCode == http.StatusOK:
			return cur, nil
		default:
			return nil, fmt.Errorf("%s: HTTP %d", cur, resp.StatusCode)
		}
	}
	return nil, fmt.Errorf("%s: too many redirects", u)
}

// Bounds of what Mirror downloads besides the tarball, which it
// streams to a temporary file (TarballLimits.MaxSize): the other snapshot
// files are held in memory, at most maxMirroredFile each (what the server
// accepts for one), and the tarball's .sha256 at most maxChecksumFile.
const (
	maxMirroredFile = 256 << 20
	maxChecksumFile = 64 << 10
)

// get requests u; a 404 is (nil, nil) unless required. A Content-Length
// above limit is refused before anything is read.
func get(ctx context.Context, client *http.Client, u string, required bool, limit int64, key string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && !required:
		resp.Body.Close()
		return nil, nil
	case resp.StatusCode != http.StatusOK:
		resp.Body.Close()
		return nil, fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
	case resp.ContentLength > limit:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s is %d bytes, more than %d (%s); not mirrored", ingest.ErrTooLarge, u, resp.ContentLength, limit, key)
	}
	return resp, nil
}

// readBody reads resp's body, at most limit bytes, and checks it is as long
// as its Content-Length says.
func readBody(resp *http.Response, u string, w io.Writer, limit int64, key string) (int64, error) {
	n, err := io.Copy(w, io.LimitReader(resp.Body, limit+1))
	switch {
	case err != nil:
		return n, fmt.Errorf("%s: %v", u, err)
	case n > limit:
		return n, fmt.Errorf("%w: %s is more than %d bytes (%s); not mirrored", ingest.ErrTooLarge, u, limit, key)
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return n, fmt.Errorf("%s: got %d bytes of %d", u, n, resp.ContentLength)
	}
	return n, nil
}

// fetch downloads u whole, at most limit bytes (past it, an error wrapping
// ingest.ErrTooLarge). A 404 is (nil, nil) unless required. The body must be as
// long as Content-Length says.
func fetch(ctx context.Context, client *http.Client, u string, required bool, limit int64) ([]byte, error) {
	resp, err := get(ctx, client, u, required, limit, "the most nixrepo mirrors of a snapshot file other than the tarball")
	if err != nil || resp == nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := readBody(resp, u, &b, limit, "the most nixrepo mirrors of a snapshot file other than the tarball"); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// download streams u (required) into a new temporary file, at most limit
// bytes ([channels] max_tarball_size; past it, an error wrapping
// ingest.ErrTooLarge), and returns the file, the bytes and their sha256. The file
// is created in os.TempDir(), which nixrepo points at its own temporary
// folder (internal/tmpdir), like the spool of a channel push; the caller
// closes and removes it. On error nothing is left behind.
func download(ctx context.Context, client *http.Client, u string, limit int64) (f *os.File, n int64, sum []byte, err error) {
	resp, err := get(ctx, client, u, true, limit, "[channels] max_tarball_size")
	if err != nil {
		return nil, 0, nil, err
	}
	defer resp.Body.Close()
	f, err = os.CreateTemp("", "nixrepo-channel-*.tar.xz")
	if err != nil {
		return nil, 0, nil, err
	}
	h := sha256.New()
	n, err = readBody(resp, u, io.MultiWriter(f, h), limit, "[channels] max_tarball_size")
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, nil, err
	}
	return f, n, h.Sum(nil), nil
}
