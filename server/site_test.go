package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/internal/store"
)

// TestSiteServedAtRoot: with Options.Site the server answers "/" and every
// path no other route takes with the static site from the bucket (folders
// by their index.html, types by extension), read-only, while the
// repository routes and /healthz answer as before; without it "/" is 404.
func TestSiteServedAtRoot(t *testing.T) {
	st := memStore(t)
	ctx := context.Background()
	for k, v := range map[string]string{
		"index.html":          "<!DOCTYPE html><title>home</title>",
		"style.css":           "body{}",
		"packages/index.html": "<!DOCTYPE html><title>packages</title>",
	} {
		if err := st.Put(ctx, store.SitePrefix+k, []byte(v), nil); err != nil {
			t.Fatal(err)
		}
	}
	opts := defaultOptions()
	opts.Site = true
	e := newEnv(t, st, opts)
	for _, c := range []struct {
		path, want, ctype string
		status            int
	}{
		{"/", "<title>home</title>", "text/html", 200},
		{"/style.css", "body{}", "text/css", 200},
		{"/packages/", "<title>packages</title>", "text/html", 200},
		{"/packages", "", "", http.StatusFound},
		{"/nothing.html", "", "", 404},
		{"/_nixrepo/layout", "", "", 404}, // only what is under _site/
		{"/healthz", "ok", "text/plain", 200},
	} {
		r := e.get(c.path, anonymous)
		if r.status != c.status || !strings.Contains(string(r.body), c.want) || !strings.HasPrefix(r.header.Get("Content-Type"), c.ctype) {
			t.Errorf("GET %s: %d %q %q, want %d with %q (%s)", c.path, r.status, r.header.Get("Content-Type"), r.body, c.status, c.want, c.ctype)
		}
	}
	if r := e.put("/", writer, []byte("x")); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT /: %d", r.status)
	}
	if r := e.get("/api/nix/r/nix-cache-info", reader); r.status != 200 {
		t.Errorf("the repository routes with the site at /: %s", r)
	}
	if r := newEnv(t, st, defaultOptions()).get("/", anonymous); r.status != 404 {
		t.Errorf("GET / without Options.Site: %d", r.status)
	}
}
