package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/internal/nixtest"
	"github.com/nixrepo/nixrepo/server"
	"github.com/nixrepo/nixrepo/site"
)

// serverFixture is a nixrepo server over a file bucket with a private
// repository and three tokens.
type serverFixture struct {
	dir                string
	url                string // http://127.0.0.1:PORT
	pub                string
	write, read, other string
	puts               atomic.Int64
}

func startServer(t *testing.T) *serverFixture {
	t.Helper()
	f := &serverFixture{dir: t.TempDir()}
	var tokens strings.Builder
	for _, tk := range []struct {
		name, read, write string
		secret            *string
	}{
		{"ci", `["nix-local"]`, `["nix-local"]`, &f.write},
		{"reader", `["nix-local"]`, `[]`, &f.read},
		{"elsewhere", `["other"]`, `["other"]`, &f.other},
	} {
		tok, sum, err := server.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		*tk.secret = tok
		fmt.Fprintf(&tokens, "[[token]]\nname = %q\nsha256 = %q\nread = %s\nwrite = %s\n", tk.name, sum, tk.read, tk.write)
	}
	cfg := `version = 1
[store]
url = "file://./store"
[[repo]]
name = "nix-local"
type = "local"
priority = 30
signing_key_file = "keys/nix-local.sec"
[[repo]]
name = "other"
type = "local"
signing_key_file = "keys/other.sec"
generate_key = true
` + tokens.String()
	if err := os.WriteFile(filepath.Join(f.dir, "nixrepo.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	f.pub = strings.TrimSpace(mustRun(t, f.dir, "keygen", "nix-local-1", "--out", "keys/nix-local.sec"))
	_, hs := serveDir(t, f.dir, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			f.puts.Add(1)
		}
	})
	f.url = hs.URL
	return f
}

// repoURL is the repository URL with token as the Basic password ("" = none).
func (f *serverFixture) repoURL(token string) string {
	u, _ := url.Parse(f.url + "/api/nix/nix-local")
	if token != "" {
		u.User = url.UserPassword("ci", token)
	}
	return u.String()
}

func (f *serverFixture) narinfos(t *testing.T) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(f.dir, "store", "nix-local", "*.narinfo"))
	return len(m)
}

// TestServeNixCopy is the server's acceptance test with real Nix: uploads
// with a token in the URL and from a netrc file, immediate substitution from
// the same URL with require-sigs and only the repository key trusted, no
// re-upload, and refused uploads for bad, read-only and missing tokens.
func TestServeNixCopy(t *testing.T) {
	env := nixtest.Require(t)
	f := startServer(t)
	tag := fmt.Sprintf("serve-%d", os.Getpid())
	paths := env.Build(t, nixtest.ClosureExpr(tag, 4))
	closure := env.Closure(t, paths...)

	// Refused uploads first: nothing may be stored. A token that may not read is refused on
	// nix-cache-info, which Nix 2.8 takes for "no binary cache here" and Nix 2.26 reports with
	// the status (and the body); a token for another repository is told 404, as if the
	// repository did not exist (the server does not confirm names to it), which every Nix
	// takes for "no binary cache here"; a read-only token is refused on the first upload.
	for _, c := range []struct {
		name, token string
		status      int
		onRead      bool
	}{
		{"wrong token", "nxr_wrong", http.StatusForbidden, true},
		{"no token", "", http.StatusUnauthorized, true},
		{"token for another repo", f.other, http.StatusNotFound, true},
		{"read-only token", f.read, http.StatusForbidden, false},
	} {
		want := fmt.Sprintf("HTTP error %d", c.status)
		if c.onRead && (!env.AtLeast("2.26") || c.status == http.StatusNotFound) {
			want = "does not appear to be a binary cache"
		}
		if _, stderr, err := env.RunErr("nix", "copy", "--to", f.repoURL(c.token), paths[0]); err == nil {
			t.Errorf("%s: nix copy succeeded", c.name)
		} else if !strings.Contains(stderr, want) {
			t.Errorf("%s: Nix %s's error lacks %q: %s", c.name, env.Version(), want, stderr)
		}
	}
	if n := f.narinfos(t); n != 0 {
		t.Fatalf("refused uploads stored %d narinfos", n)
	}

	env.Run(t, "nix", "copy", "--to", f.repoURL(f.write), paths[0])
	if n := f.narinfos(t); n != len(closure) {
		t.Fatalf("%d narinfos stored for a closure of %d", n, len(closure))
	}
	// The same URL substitutes immediately, signatures required.
	if err := env.Substitute(t, f.repoURL(f.read), []string{f.pub}, paths...); err != nil {
		t.Fatalf("substitution after upload: %v", err)
	}
	if err := env.Substitute(t, f.repoURL(f.read), []string{"someone-else-1:" + strings.Repeat("B", 43) + "="}, paths...); err == nil {
		t.Fatal("substitution succeeded with an untrusted key")
	}
	// A second copy uploads nothing (fresh Nix cache, so Nix asks the server).
	before := f.puts.Load()
	env2 := nixtest.Require(t)
	env2.Run(t, "nix", "copy", "--to", f.repoURL(f.write), paths[0])
	if d := f.puts.Load() - before; d != 0 {
		t.Fatalf("second nix copy made %d PUT requests", d)
	}

	// Credentials from a netrc file, for a new closure.
	paths2 := env.Build(t, nixtest.ClosureExpr(tag+"-netrc", 3))
	netrc := filepath.Join(t.TempDir(), "netrc")
	host := strings.TrimPrefix(f.url, "http://")
	host = host[:strings.LastIndexByte(host, ':')]
	os.WriteFile(netrc, []byte(fmt.Sprintf("machine %s login ci password %s\n", host, f.write)), 0o600)
	env.Run(t, "nix", append([]string{"copy", "--option", "netrc-file", netrc, "--to", f.repoURL("")}, paths2...)...)
	if _, _, err := env2.RunErr("nix", "copy", "--option", "netrc-file", netrc, "--from", f.repoURL(""),
		"--to", filepath.Join(t.TempDir(), "root"), "--option", "trusted-public-keys", f.pub, paths2[0]); err != nil {
		t.Fatalf("substitution with netrc credentials: %v", err)
	}
	out := mustRun(t, f.dir, "verify", "--repo", "nix-local")
	if !strings.Contains(out, "0 failed") {
		t.Fatalf("verify after uploads:\n%s", out)
	}
}

// serveDir starts the server of the nixrepo.toml in dir, as `nixrepo serve`
// builds it; observe (if set) sees every request first.
func serveDir(t *testing.T, dir string, observe http.HandlerFunc) (*server.Server, *httptest.Server) {
	t.Helper()
	return serveDirOn(t, dir, nil, observe)
}

// serveDirOn is serveDir on the listener ln (a new loopback one when nil),
// for configurations that must name the server's URL before it starts.
func serveDirOn(t *testing.T, dir string, ln net.Listener, observe http.HandlerFunc) (*server.Server, *httptest.Server) {
	t.Helper()
	c, err := config.Load(filepath.Join(dir, "nixrepo.toml"))
	if err != nil {
		t.Fatal(err)
	}
	a := &app{stdout: os.Stdout, stderr: os.Stderr, quiet: true, cfg: c}
	srv, st, err := a.newServer(context.Background(), c)
	t.Cleanup(func() { a.tmp.Close() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if observe != nil {
			observe(w, r)
		}
		srv.ServeHTTP(w, r)
	}))
	if ln != nil {
		hs.Listener.Close()
		hs.Listener = ln
	}
	hs.Start()
	t.Cleanup(hs.Close)
	return srv, hs
}

// uploadURL is the repository's upload URL with token as the Basic password.
func (f *serverFixture) uploadURL(token string) string {
	u, _ := url.Parse(f.url + server.UploadPrefix + "nix-local")
	u.User = url.UserPassword("ci", token)
	return u.String()
}

// TestUploadURLLeavesSubstitutionSigned: a machine that uploads with nix
// copy to the upload URL and then substitutes the same paths from the
// repository URL (one netrc for both, as a CI machine has), with its own Nix
// cache and require-sigs, gets them: Nix cached the unsigned narinfos it
// sent under the upload URL only. The site and setmeup print that upload
// URL.
func TestUploadURLLeavesSubstitutionSigned(t *testing.T) {
	env := nixtest.Require(t)
	if site.ServerPrefix != server.NixPrefix || site.ServerUploadPrefix != server.UploadPrefix {
		t.Fatalf("the site links to %s and %s, the server serves %s and %s", site.ServerPrefix, site.ServerUploadPrefix, server.NixPrefix, server.UploadPrefix)
	}
	f := startServer(t)
	netrc := filepath.Join(t.TempDir(), "netrc")
	host := strings.TrimPrefix(f.url, "http://")
	os.WriteFile(netrc, []byte(fmt.Sprintf("machine %s login ci password %s\n", host[:strings.LastIndexByte(host, ':')], f.write)), 0o600)
	paths := env.Build(t, nixtest.ClosureExpr(fmt.Sprintf("upload-url-%d", os.Getpid()), 3))
	env.Run(t, "nix", "copy", "--option", "netrc-file", netrc, "--to", f.url+server.UploadPrefix+"nix-local", paths[0])
	if n := f.narinfos(t); n != 3 {
		t.Fatalf("%d narinfos stored for a closure of 3", n)
	}
	root := filepath.Join(t.TempDir(), "root")
	if _, stderr, err := env.RunErr("nix", "copy", "--option", "netrc-file", netrc, "--from", f.url+server.NixPrefix+"nix-local", "--to", root,
		"--option", "require-sigs", "true", "--option", "trusted-public-keys", f.pub, paths[0]); err != nil {
		t.Fatalf("substitution by the uploading machine: %v\n%s", err, stderr)
	}
	out := mustRun(t, f.dir, "setmeup", "--repo", "nix-local", "--url", "https://cache.example.org")
	if !strings.Contains(out, "nix copy --to 'https://cache.example.org"+server.UploadPrefix+"nix-local'") {
		t.Errorf("setmeup does not print the upload URL:\n%s", out)
	}
}

// TestServeNixCopyEveryCompression: nix copy uploads with every compression
// the server verifies, gzip included (Nix names its NAR files ".nar"), and
// a fresh store substitutes the closure with require-sigs.
func TestServeNixCopyEveryCompression(t *testing.T) {
	env := nixtest.Require(t)
	f := startServer(t)
	for _, c := range []string{"gzip", "zstd", "none"} {
		paths := env.Build(t, nixtest.ClosureExpr(fmt.Sprintf("compression-%s-%d", c, os.Getpid()), 3))
		if _, stderr, err := env.RunErr("nix", "copy", "--to", f.uploadURL(f.write)+"?compression="+c, paths[0]); err != nil {
			t.Errorf("nix copy with compression=%s: %v\n%s", c, err, stderr)
			continue
		}
		if err := env.Substitute(t, f.repoURL(f.read), []string{f.pub}, paths...); err != nil {
			t.Errorf("substitution of what compression=%s uploaded: %v", c, err)
		}
	}
}
