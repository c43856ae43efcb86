package channel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/ingest/channel"
	"github.com/nixrepo/nixrepo/internal/compress"
)

// bigUpstream is a channel upstream whose release nixos-25.11.1.aaaaaaa
// has a nixexprs.tar.xz of size bytes (not a tarball: what it holds does
// not matter to the download), streamed without being held in memory,
// with or without a Content-Length; it has no other files.
func bigUpstream(t *testing.T, size int64, withLength bool) string {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/nixos-25.11":
			http.Redirect(w, r, "/r/nixos-25.11.1.aaaaaaa", http.StatusFound)
		case "/r/nixos-25.11.1.aaaaaaa":
			fmt.Fprint(w, "release")
		case "/r/nixos-25.11.1.aaaaaaa/nixexprs.tar.xz":
			if withLength {
				w.Header().Set("Content-Length", fmt.Sprint(size))
			}
			io.CopyN(w, repeating('x'), size)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(up.Close)
	return up.URL
}

type repeating byte

func (b repeating) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// tempFiles lists what is left in dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestMirrorChannelStreamsTarball: the upstream tarball is streamed to a
// temporary file, not held in memory: mirroring a 96 MiB one allocates a
// small fraction of that, and leaves no file behind. Before, the download
// was read whole into memory (up to 4 GiB).
func TestMirrorChannelStreamsTarball(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	const size = 96 << 20
	base := bigUpstream(t, size, true)
	st := memStore(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := channel.Mirror(context.Background(), st.Repo("r"), base, "nixos-25.11", nil)
	runtime.ReadMemStats(&after)
	// The body is not xz: the mirror fails when the tarball is checked,
	// after the whole download.
	if err == nil || !strings.Contains(err.Error(), "not a usable channel tarball") {
		t.Fatalf("err = %v; want the tarball refused as not xz", err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("mirroring a %d MiB tarball allocated %.1f MiB", size>>20, float64(alloc)/(1<<20))
	if alloc > 16<<20 {
		t.Errorf("mirroring a %d MiB tarball allocated %d MiB; want it streamed (at most 16 MiB)", size>>20, alloc>>20)
	}
	if left := tempFiles(t, tmp); len(left) != 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
}

// TestMirrorChannelTarballSizeLimit: an upstream tarball past
// [channels] max_tarball_size is refused with an error naming the limit,
// whether the upstream declares its size (refused before the body is read)
// or not (refused at the first byte past the limit); nothing is published
// and no temporary file is left.
func TestMirrorChannelTarballSizeLimit(t *testing.T) {
	for _, withLength := range []bool{true, false} {
		t.Run(fmt.Sprintf("Content-Length %v", withLength), func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			base := bigUpstream(t, 3<<20, withLength)
			st := memStore(t)
			_, err := channel.Mirror(context.Background(), st.Repo("r"), base, "nixos-25.11",
				&channel.MirrorOptions{Tarball: channel.TarballLimits{MaxSize: 1 << 20}})
			if !errors.Is(err, ingest.ErrTooLarge) || !strings.Contains(err.Error(), "max_tarball_size") || !strings.HasPrefix(err.Error(), "mirror nixos-25.11: ") {
				t.Fatalf("err = %v; want ErrTooLarge naming the channel and max_tarball_size", err)
			}
			if k := keys(t, st, ""); len(k) != 0 {
				t.Errorf("a refused release left %v", k)
			}
			if left := tempFiles(t, tmp); len(left) != 0 {
				t.Errorf("left in the temporary folder: %v", left)
			}
		})
	}
	// At the limit exactly, the download is taken (and then checked).
	base := bigUpstream(t, 1<<20, false)
	_, err := channel.Mirror(context.Background(), memStore(t).Repo("r"), base, "nixos-25.11",
		&channel.MirrorOptions{Tarball: channel.TarballLimits{MaxSize: 1 << 20}})
	if err == nil || errors.Is(err, ingest.ErrTooLarge) {
		t.Fatalf("a tarball of exactly max_tarball_size: %v; want it downloaded, then refused as not xz", err)
	}
}

// TestReadStorePaths: a store path list is decoded as it is read, a line
// that is no store path (or longer than one can be) is a
// *StorePathListError naming the line, and corrupt xz is an error, never a
// shorter list.
func TestReadStorePaths(t *testing.T) {
	list := "/nix/store/0gm6dydmdwj6mz63yrw4d1sy23lvqc7r-hello-2.12\n# comment\n\n0yw1fcqr630s52wb11bxvh6baxqkjm8i-lib-1.0\n"
	paths, err := channel.ReadStorePaths(bytes.NewReader(xzBytes(t, []byte(list))), "xz")
	if err != nil || len(paths) != 2 {
		t.Fatalf("got %v, %v; want 2 paths", paths, err)
	}
	for _, tc := range []struct {
		name, text string
		line       int
	}{
		{"not a store path", list + "/etc/passwd\n", 5},
		{"a line longer than a store path", list + strings.Repeat("a", 64<<10) + "\n", 5},
	} {
		_, err := channel.ReadStorePaths(bytes.NewReader(xzBytes(t, []byte(tc.text))), "xz")
		var le *channel.StorePathListError
		if !errors.As(err, &le) || le.Line != tc.line {
			t.Errorf("%s: %v; want a StorePathListError at line %d", tc.name, err, tc.line)
		}
	}
	b := xzBytes(t, []byte(list))
	if _, err := channel.ReadStorePaths(bytes.NewReader(b[:len(b)-8]), "xz"); !errors.Is(err, compress.ErrCorrupt) {
		t.Errorf("truncated xz: %v; want ErrCorrupt", err)
	}
}
