package ingest

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
	"path"
	"strings"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// MirrorOptions tune MirrorChannel.
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

// MirrorChannel mirrors the current release of an upstream channel laid out
// like channels.nixos.org: <base>/<channel> redirects to the release folder,
// whose last path segment is the release name (used as the snapshot ID) and
// which holds nixexprs.tar.xz (required; its .sha256 is checked when
// present), git-revision, store-paths.xz and packages.json.br. A release
// already mirrored is skipped without downloading; a release older than the
// channel's current snapshot never moves the channel.
func MirrorChannel(ctx context.Context, repo *store.Cache, base, channel string, o *MirrorOptions) (*MirrorResult, error) {
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
	tarball, err := fetch(ctx, client, rel+"/"+store.ChannelTarball, true)
	if err != nil {
		return nil, fmt.Errorf("mirror %s: %w", channel, err)
	}
	res.Bytes += int64(len(tarball))
	if sum, err := fetch(ctx, client, rel+"/"+store.ChannelTarball+".sha256", false); err != nil {
		return nil, fmt.Errorf("mirror %s: %w", channel, err)
	} else if sum != nil {
		want := strings.Fields(string(sum))
		got := sha256.Sum256(tarball)
		if len(want) == 0 || !strings.EqualFold(want[0], hex.EncodeToString(got[:])) {
			return nil, fmt.Errorf("mirror %s: %s does not match its published sha256 (%s); not mirrored", channel, store.ChannelTarball, strings.TrimSpace(string(sum)))
		}
	}
	extra := map[string][]byte{}
	for _, name := range store.SnapshotFiles[1:] {
		b, err := fetch(ctx, client, rel+"/"+name, false)
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
	push, err := PushChannel(ctx, repo, bytes.NewReader(tarball), PushOptions{
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

// fetch downloads u whole. A 404 is (nil, nil) unless required. The body
// must be as long as Content-Length says.
func fetch(ctx context.Context, client *http.Client, u string, required bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && !required {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<30))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", u, err)
	}
	if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
		return nil, fmt.Errorf("%s: got %d bytes of %d", u, len(b), resp.ContentLength)
	}
	return b, nil
}
