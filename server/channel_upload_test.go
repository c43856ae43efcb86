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

	"github.com/ulikunitz/xz"
	_ "gocloud.dev/blob/memblob"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/server"
)

func channelServer(t *testing.T) (*httptest.Server, *store.Store) {
	t.Helper()
	return channelServerLimits(t, ingest.TarballLimits{})
}

func channelServerLimits(t *testing.T, lim ingest.TarballLimits) (*httptest.Server, *store.Store) {
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
	lim := ingest.TarballLimits{MaxEntries: 4, MaxUnpackedSize: 64 << 10}
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
