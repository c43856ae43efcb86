package server_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulikunitz/xz"
	_ "gocloud.dev/blob/memblob"

	"github.com/nixrepo/nixrepo/ingest/channel"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/server"
)

func channelServer(t *testing.T) (*httptest.Server, *store.Store) {
	t.Helper()
	return channelServerLimits(t, channel.TarballLimits{})
}

func channelServerLimits(t *testing.T, lim channel.TarballLimits) (*httptest.Server, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(st, &server.Options{
		Repos:          []server.Repo{{Name: "r", Public: true}},
		Tokens:         []server.Token{{Name: "w", SHA256: server.HashToken("secret"), Write: []string{"r"}}},
		ChannelTarball: lim,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := serveFast(t, srv)
	return hs, st
}

func tinyChannel(t *testing.T, top string, extra ...*tar.Header) []byte {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	body := "{ ... }: { x = 1; }\n"
	tw.WriteHeader(&tar.Header{Name: top + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: top + "/default.nix", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
	tw.Write([]byte(body))
	for _, h := range extra {
		tw.WriteHeader(h)
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte{'x'}, int(h.Size)))
		}
	}
	tw.Close()
	var out bytes.Buffer
	w, _ := xz.NewWriter(&out)
	w.Write(tb.Bytes())
	w.Close()
	return out.Bytes()
}

func putChannel(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	req.SetBasicAuth("ci", "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func channelKeys(t *testing.T, st *store.Store) []string {
	var keys []string
	st.List(context.Background(), "r/channels/", false, func(o store.Object) error {
		keys = append(keys, o.Key)
		return nil
	})
	return keys
}

// TestChannelUploadRefusals: each bad channel upload gets a 4xx with a
// reason and leaves nothing visible.
func TestChannelUploadRefusals(t *testing.T) {
	good := tinyChannel(t, "c")
	tests := []struct {
		name, path string
		body       []byte
		status     int
		reason     string
	}{
		{"wrong file name", "/api/nix/r/channels/c/nixpkgs/1/evil.tar.gz", good, 400, `"evil.tar.gz" is not one of them`},
		{"other file name", "/api/nix/r/channels/c/nixpkgs/1/default.nix", good, 400, `"default.nix" is not one of them`},
		{"metadata before the tarball", "/api/nix/r/channels/c/nixpkgs/1/git-revision", []byte("abc"), 422, "upload nixexprs.tar.xz first"},
		{"not xz", "/api/nix/r/channels/c/nixpkgs/1", []byte("plain text"), 422, "xz"},
		{"traversal in name", "/api/nix/r/channels/..%2f..%2fx/nixpkgs/1", good, 400, ""},
		{"dot-dot snapshot", "/api/nix/r/channels/c/nixpkgs/..", good, 400, ""},
		{"bad flavor", "/api/nix/r/channels/c/guix/1", good, 400, "flavor"},
		{"too few segments", "/api/nix/r/channels/c", good, 400, "channels/NAME/FLAVOR/SNAPSHOT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs, st := channelServer(t)
			status, body := putChannel(t, hs.URL+tc.path, tc.body)
			if status < 400 || status >= 500 || (tc.status != 0 && status != tc.status && tc.reason != "") || !strings.Contains(body, tc.reason) {
				t.Fatalf("status %d body %q; want %d with %q", status, body, tc.status, tc.reason)
			}
			if k := channelKeys(t, st); len(k) != 0 {
				t.Fatalf("refused upload left %v", k)
			}
		})
	}
}

// TestChannelUploadRefusesUnsafeTarball: a tarball that would write
// through a symlink is 422, one past the entry or unpacked-size limit 413,
// each with the reason; nothing becomes visible and nothing is written
// outside the unpack folder.
func TestChannelUploadRefusesUnsafeTarball(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	lim := channel.TarballLimits{MaxEntries: 4, MaxUnpackedSize: 64 << 10}
	tests := []struct {
		name   string
		body   []byte
		status int
		reason string
	}{
		{"file through a symlink", tinyChannel(t, "c", &tar.Header{Name: "c/x", Typeflag: tar.TypeSymlink, Linkname: victim},
			&tar.Header{Name: "c/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5}), 422, `entry "c/x" replaces the earlier symlink "c/x"`},
		{"too many entries", tinyChannel(t, "c", &tar.Header{Name: "c/a", Typeflag: tar.TypeReg, Size: 1}, &tar.Header{Name: "c/b", Typeflag: tar.TypeReg, Size: 1},
			&tar.Header{Name: "c/c", Typeflag: tar.TypeReg, Size: 1}), 413, "the tarball has more than 4 entries (max_tarball_entries)"},
		{"unpacks too large", tinyChannel(t, "c", &tar.Header{Name: "c/big", Typeflag: tar.TypeReg, Size: 100 << 10}), 413, "the tarball unpacks to more than 65536 bytes (max_tarball_unpacked_size)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs, st := channelServerLimits(t, lim)
			status, body := putChannel(t, hs.URL+"/api/nix/r/channels/c/nixpkgs/1", tc.body)
			if status != tc.status || !strings.Contains(body, tc.reason) {
				t.Fatalf("status %d body %q; want %d with %q", status, body, tc.status, tc.reason)
			}
			if k := channelKeys(t, st); len(k) != 0 {
				t.Fatalf("refused upload left %v", k)
			}
			if b, _ := os.ReadFile(victim); string(b) != "untouched" {
				t.Fatalf("the upload wrote through the symlink: %q", b)
			}
		})
	}
	// Within the limits, the same server takes a channel.
	hs, _ := channelServerLimits(t, lim)
	if status, body := putChannel(t, hs.URL+"/api/nix/r/channels/c/nixpkgs/1", tinyChannel(t, "c")); status != 200 {
		t.Fatalf("a channel within the limits: %d %s", status, body)
	}
}

func TestChannelUploadIsWriteOnce(t *testing.T) {
	hs, st := channelServer(t)
	u := hs.URL + "/api/nix/r/channels/c/nixpkgs/1.0"
	if status, body := putChannel(t, u, tinyChannel(t, "c")); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	if status, body := putChannel(t, u+"/nixexprs.tar.xz", tinyChannel(t, "c")); status != 200 {
		t.Fatalf("identical re-upload: %d %s", status, body)
	}
	before := channelKeys(t, st)
	if status, body := putChannel(t, u, tinyChannel(t, "other")); status != http.StatusConflict || !strings.Contains(body, "immutable") {
		t.Fatalf("different bytes: %d %s", status, body)
	}
	if after := channelKeys(t, st); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("conflicting upload changed %v → %v", before, after)
	}
	// Metadata files can be added once.
	if status, body := putChannel(t, u+"/git-revision", []byte("abc\n")); status != 200 {
		t.Fatalf("git-revision: %d %s", status, body)
	}
	if status, _ := putChannel(t, u+"/git-revision", []byte("def\n")); status != http.StatusConflict {
		t.Fatalf("changing git-revision: %d", status)
	}
	// Reads: redirect with Link, release page, immutable file.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(hs.URL + "/api/nix/r/channels/c")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, err := resp.Location(); resp.StatusCode != 302 || err != nil || loc.String() != hs.URL+"/api/nix/r/channels/c/nixpkgs/1.0" {
		t.Fatalf("channel redirect: %d %v (%v)", resp.StatusCode, resp.Header, err)
	}
	for _, p := range []string{"/api/nix/r/channels/c/nixpkgs/1.0", "/api/nix/r/channels/c/nixpkgs/1.0/nixexprs.tar.xz", "/api/nix/r/channels/c/nixpkgs/1.0/git-revision", "/api/nix/r/channels/c/channel.json"} {
		resp, err := http.Get(hs.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s = %d", p, resp.StatusCode)
		}
	}
}

// TestChannelTruncatedUploadPublishesNothing: a client that announces more bytes than it
// sends and hangs up publishes nothing.
func TestChannelTruncatedUploadPublishesNothing(t *testing.T) {
	hs, st := channelServer(t)
	body := tinyChannel(t, "c")
	conn, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /api/nix/r/channels/c/nixpkgs/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Y2k6c2VjcmV0\r\nContent-Length: %d\r\n\r\n", len(body)+1000)
	conn.Write(body)
	conn.(*net.TCPConn).CloseWrite()
	io.ReadAll(conn)
	conn.Close()
	if k := channelKeys(t, st); len(k) != 0 {
		t.Fatalf("truncated upload left %v", k)
	}
}

// manyFileChannel is a channel tarball of n small files: slow enough to
// unpack (each file is created on disk) that concurrent uploads overlap.
func manyFileChannel(t *testing.T, n int) []byte {
	t.Helper()
	extra := make([]*tar.Header, n)
	for i := range extra {
		extra[i] = &tar.Header{Name: fmt.Sprintf("top/f%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}
	}
	return tinyChannel(t, "top", extra...)
}

// unpackFolders counts the channel unpack folders in dir.
func unpackFolders(dir string) int {
	m, _ := filepath.Glob(filepath.Join(dir, "nixrepo-unpack-*"))
	return len(m)
}

// TestConcurrentChannelUnpacksBounded: channel uploads that arrive
// together are unpacked at most max_concurrent_unpacks (default 2) at a
// time, each disk-hungry unpack folder waiting for its turn; every upload
// is still published. Before, all of them unpacked at once.
func TestConcurrentChannelUnpacksBounded(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	hs, st := channelServer(t)
	tarball := manyFileChannel(t, 6000)
	const uploads = 5
	stop := make(chan struct{})
	peak := make(chan int)
	go func() {
		most := 0
		for {
			select {
			case <-stop:
				peak <- most
				return
			default:
			}
			most = max(most, unpackFolders(tmp))
			time.Sleep(time.Millisecond)
		}
	}()
	errs := make(chan string, uploads)
	for i := range uploads {
		go func() {
			code, text := putChannel(t, fmt.Sprintf("%s/api/nix/r/channels/c/nixpkgs/%d", hs.URL, i+1), tarball)
			if code != http.StatusOK {
				errs <- fmt.Sprintf("upload %d: %d %s", i+1, code, text)
				return
			}
			errs <- ""
		}()
	}
	for range uploads {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
	close(stop)
	if most := <-peak; most > 2 {
		t.Errorf("%d channel tarballs were unpacked at once; the limit is 2 (max_concurrent_unpacks)", most)
	} else if most == 0 {
		t.Errorf("no unpack folder seen in %s", tmp)
	}
	ch, err := st.Repo("r").ReadChannel(context.Background(), "c")
	if err != nil || len(ch.Snapshots) != uploads {
		t.Errorf("channel state after %d uploads: %+v, %v", uploads, ch, err)
	}
}

// TestChannelUnpackBusyRefused: a channel upload that finds every unpack
// slot busy for upload_queue_timeout is refused with a 400 naming
// max_concurrent_unpacks (never a 5xx, 408 or 429) and publishes nothing;
// the upload that held the slot is published.
func TestChannelUnpackBusyRefused(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	st, err := store.Open(context.Background(), "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(st, &server.Options{
		Repos:                []server.Repo{{Name: "r", Public: true}},
		Tokens:               []server.Token{{Name: "w", SHA256: server.HashToken("secret"), Write: []string{"r"}}},
		MaxConcurrentUnpacks: 1,
		UploadQueueTimeout:   200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := serveFast(t, srv)
	slow := manyFileChannel(t, 6000)
	first := make(chan string, 1)
	go func() {
		code, text := putChannel(t, hs.URL+"/api/nix/r/channels/c/nixpkgs/1", slow)
		first <- fmt.Sprintf("%d %s", code, text)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for unpackFolders(tmp) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first upload is never unpacked")
		}
		time.Sleep(time.Millisecond)
	}
	code, text := putChannel(t, hs.URL+"/api/nix/r/channels/c/nixpkgs/2", tinyChannel(t, "top"))
	if code != http.StatusBadRequest || !strings.Contains(text, "max_concurrent_unpacks") || !strings.Contains(text, "upload_queue_timeout") {
		t.Errorf("upload while the only unpack slot is busy: %d %q, want 400 naming max_concurrent_unpacks", code, text)
	}
	if r := <-first; !strings.HasPrefix(r, "200 ") {
		t.Errorf("the upload holding the slot: %s", r)
	}
	ch, err := st.Repo("r").ReadChannel(context.Background(), "c")
	if err != nil || len(ch.Snapshots) != 1 || ch.Snapshots[0].ID != "1" {
		t.Errorf("channel state: %+v, %v; want snapshot 1 only", ch, err)
	}
}

// TestChannelUploadTarballSizeLimit: a channel tarball upload past
// [channels] max_tarball_size is 413 naming it, refused before its body
// is read when it declares its size and at the first byte past the limit
// when it does not; nothing is published.
func TestChannelUploadTarballSizeLimit(t *testing.T) {
	hs, st := channelServerLimits(t, channel.TarballLimits{MaxSize: 1000})
	body := bytes.Repeat([]byte{'x'}, 2000)
	code, text := putChannel(t, hs.URL+"/api/nix/r/channels/c/nixpkgs/1", body)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(text, "max_tarball_size") {
		t.Errorf("declared size past the limit: %d %q, want 413 naming max_tarball_size", code, text)
	}
	req, _ := http.NewRequest(http.MethodPut, hs.URL+"/api/nix/r/channels/c/nixpkgs/1", io.MultiReader(bytes.NewReader(body))) // no Content-Length
	req.SetBasicAuth("ci", "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "max_tarball_size") {
		t.Errorf("chunked body past the limit: %d %q, want 413 naming max_tarball_size", resp.StatusCode, b)
	}
	if k := channelKeys(t, st); len(k) != 0 {
		t.Errorf("refused uploads left %v", k)
	}
}
