package site

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/internal/nixtest"
)

// chromiumFlags keep headless Chromium quiet and self-contained.
func chromiumFlags(profile string) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + profile}
}

// outputDir is where the screenshots go: $NIXREPO_TEST_OUTPUT, else
// $TMPDIR/nixrepo-site-screenshots (t.TempDir() is deleted after the test).
func outputDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("NIXREPO_TEST_OUTPUT")
	if d == "" {
		d = filepath.Join(os.TempDir(), "nixrepo-site-screenshots")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// writeSite writes the site of files under dir.
func writeSite(t testing.TB, dir string, files []File) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// serveSite serves dir like any static file server.
func serveSite(t testing.TB, dir string) *httptest.Server {
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv
}

// runChromium runs one headless Chromium command and returns its stdout.
func runChromium(t testing.TB, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	profile, err := os.MkdirTemp("", "nixrepo-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(profile)
	cmd := exec.CommandContext(ctx, bin, append(chromiumFlags(profile), args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

func dumpDOM(t testing.TB, bin, u string) string {
	t.Helper()
	return runChromium(t, bin, "--virtual-time-budget=5000", "--dump-dom", u)
}

var resultsRE = regexp.MustCompile(`(?s)<div id="results"[^>]*>.*?</div>`)

// TestChromiumShowsVersionsAndSearchFinds serves the rendered site statically and checks it in
// headless Chromium: the package page lists the versions, and the search
// box (JavaScript over the sharded index) finds packages by exact name,
// substring and typo, and from ?q= in the page URL.
func TestChromiumShowsVersionsAndSearchFinds(t *testing.T) {
	bin := nixtest.RequireTool(t, "chromium") // Debian package chromium
	// ShardSize 1 splits the search index as deep as it goes, so that the
	// queries below cross split prefixes and exact-key shards.
	files, err := Render(loadCatalog(t), Options{BaseURL: "https://cache.example.org", ShardSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeSite(t, dir, files)
	srv := serveSite(t, dir)

	// Chromium runs are slow to start: run them side by side.
	t.Run("package page", func(t *testing.T) {
		t.Parallel()
		dom := dumpDOM(t, bin, srv.URL+"/packages/openssl.html")
		for _, want := range []string{`id="v-3.4.0"`, `id="v-3.0.15"`, "badge latest", "ambiguous",
			"/nix/store/5i6xvddz3xd3fpx9pw4y7v0v9mr2f8fj-openssl-3.4.0-dev", "6.5 MiB"} {
			if !strings.Contains(dom, want) {
				t.Errorf("packages/openssl.html in Chromium lacks %q", want)
			}
		}
	})

	for _, c := range []struct {
		q     string
		first string   // the first result's href
		want  []string // also listed
	}{
		{"openssl", "packages/openssl.html", nil},
		{"hello", "packages/hello.html", []string{"packages/hello-unwrapped.html"}},
		{"hello-u", "packages/hello-unwrapped.html", nil},
		{"unwrapped", "packages/hello-unwrapped.html", nil},
		{"OpenSSL", "packages/openssl.html", nil},
		{"requests", "packages/python3.12-requests.html", nil},
		{"helo", "packages/hello.html", nil},
		{"h", "packages/hello.html", []string{"packages/python3.12-requests.html"}},
		{"weird?name=1", "packages/weird~3Fname~3D1.html", nil},
		{"zzzznothing", "", nil},
	} {
		t.Run("q="+c.q, func(t *testing.T) {
			t.Parallel()
			dom := dumpDOM(t, bin, srv.URL+"/index.html?q="+url.QueryEscape(c.q))
			res := resultsRE.FindString(dom)
			if res == "" {
				t.Fatalf("no #results in the DOM:\n%s", dom)
			}
			if !strings.Contains(res, `data-search-state="done"`) || !strings.Contains(res, "data-search-ms=") {
				t.Errorf("the search did not finish: %s", res)
			}
			hrefs := regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(res, -1)
			if c.first == "" {
				if !strings.Contains(res, "No package matches") {
					t.Errorf("a query without matches shows: %s", res)
				}
				return
			}
			if len(hrefs) == 0 || hrefs[0][1] != c.first {
				t.Errorf("first result is not %s: %s", c.first, res)
			}
			for _, w := range c.want {
				if !strings.Contains(res, `href="`+w+`"`) {
					t.Errorf("results lack %s: %s", w, res)
				}
			}
		})
	}

	out := outputDir(t)
	for _, s := range []struct{ name, path string }{
		{"site.png", "/index.html?q=openssl"},
		{"site-package.png", "/packages/openssl.html"},
		{"site-home.png", "/index.html"},
		{"site-packages.png", "/packages/index.html"},
		{"site-channels.png", "/channels.html"},
		{"site-setup.png", "/setup/nix-local.html"},
	} {
		t.Run("screenshot "+s.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(out, s.name)
			// Without run-all-compositor-stages-before-draw, tiles at the
			// bottom of the window may not be painted yet.
			runChromium(t, bin, "--virtual-time-budget=5000", "--run-all-compositor-stages-before-draw", "--hide-scrollbars",
				"--window-size=1280,900", "--screenshot="+p, srv.URL+s.path)
			if st, err := os.Stat(p); err != nil || st.Size() == 0 {
				t.Fatalf("screenshot %s: %v", p, err)
			}
			t.Logf("screenshot of %s: %s", s.path, p)
		})
	}
}

// TestSearchBenchmark measures the static search at 100k packages in
// Chromium (NIXREPO_BENCH=1; bench/site.sh runs it): time from query start
// to the first rendered results, as search.js records it in data-search-ms,
// median of 5 runs, each in a fresh browser context (empty cache) of one
// running Chromium. Virtual time (--virtual-time-budget) stops
// performance.now() while JavaScript runs, so this drives Chromium over
// --remote-debugging-pipe in real time instead. Without NIXREPO_BENCH=1
// (go test, CI) it is a quick run of the same harness: 2000 packages, one
// run per query, every query finding its package.
func TestSearchBenchmark(t *testing.T) {
	bin := nixtest.RequireTool(t, "chromium") // Debian package chromium
	n, runs := 100_000, 5
	if os.Getenv("NIXREPO_BENCH") != "1" {
		n, runs = 2000, 1
	}
	if s := os.Getenv("NIXREPO_BENCH_PACKAGES"); s != "" {
		fmt.Sscan(s, &n)
	}
	stems, source := debianStems(), "dpkg-query"
	if stems == nil {
		stems, source = builtinStems, "built-in"
	}
	cat := syntheticCatalog(n, 1, stems)
	dir := t.TempDir()
	start := time.Now()
	var count, searchBytes int
	err := Generate(cat, Options{BaseURL: "https://cache.example.org"}, func(f File) error {
		count++
		if strings.HasPrefix(f.Path, "search/") {
			searchBytes += len(f.Data)
		}
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, f.Data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	var m searchManifestJSON
	if b, err := os.ReadFile(filepath.Join(dir, "search", "manifest.json")); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	fmt.Printf("bench: %d packages (%d versions, %d store paths; names from %s %d stems): rendered %d files in %.1fs; search index %.1f MB in %d shards + %d name lists\n",
		n, cat.Stats.Versions, cat.Stats.Paths, source, len(stems), count, time.Since(start).Seconds(), float64(searchBytes)/1e6, len(m.Shards), len(m.Names))
	srv := serveSite(t, dir)

	queries := []struct{ label, q string }{
		{"exact name", cat.Packages[n/2].Name},
		{"prefix", "python3.12-lib"},
		{"2 letters", "li"},
		{"substring", "ssl"},
	}
	// One browser; each run in a fresh browser context (empty cache).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	profile := t.TempDir()
	c, err := startCDP(ctx, bin, append(chromiumFlags(profile), "--window-size=1280,900")...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	cdpSearch(t, c, srv.URL+"/index.html?q=warm-up")
	for _, q := range queries {
		var ms, page []float64
		var total string
		for range runs {
			r := cdpSearch(t, c, srv.URL+"/index.html?q="+url.QueryEscape(q.q))
			if r.total == "" || r.total == "0" {
				t.Errorf("static search %q found nothing (%q)", q.q, r.total)
			}
			ms = append(ms, r.ms)
			page = append(page, r.pageMs)
			total = r.total
		}
		fmt.Printf("bench: static search %-10s q=%-26q first results median %6.1f ms, min %6.1f (runs %v); since navigation %6.1f ms; %s matches; load %s\n",
			q.label, q.q, median(ms), slices.Min(ms), ms, median(page), total, loadAvg())
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type searchRun struct {
	ms, pageMs float64
	total      string
}

// cdpSearch opens u in a new browser context of c (an empty cache, like a
// first visit) and waits, in real time, for the search to finish; it
// returns #results' timings.
func cdpSearch(t testing.TB, c *cdpConn, u string) searchRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var bc struct {
		BrowserContextID string `json:"browserContextId"`
	}
	if err := c.call(ctx, "", "Target.createBrowserContext", map[string]any{}, &bc); err != nil {
		t.Fatal(err)
	}
	defer c.call(ctx, "", "Target.disposeBrowserContext", map[string]any{"browserContextId": bc.BrowserContextID}, nil)
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := c.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank", "browserContextId": bc.BrowserContextID}, &target); err != nil {
		t.Fatal(err)
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := c.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		t.Fatal(err)
	}
	if err := c.call(ctx, att.SessionID, "Page.navigate", map[string]any{"url": u}, nil); err != nil {
		t.Fatal(err)
	}
	const expr = `(() => { const r = document.getElementById('results');
		if (!r || r.getAttribute('data-search-state') !== 'done') return '';
		return [r.getAttribute('data-search-ms'), r.getAttribute('data-search-page-ms'), r.getAttribute('data-search-total')].join(' '); })()`
	for {
		var res struct {
			Result struct {
				Value string `json:"value"`
			} `json:"result"`
		}
		if err := c.call(ctx, att.SessionID, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res); err != nil {
			t.Fatal(err)
		}
		if v := res.Result.Value; v != "" {
			var r searchRun
			if _, err := fmt.Sscan(v, &r.ms, &r.pageMs, &r.total); err != nil {
				t.Fatalf("results attributes %q: %v", v, err)
			}
			return r
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: the search did not finish: %v", u, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// cdpConn is a minimal Chrome DevTools Protocol client over
// --remote-debugging-pipe (fd 3: commands to Chromium, fd 4: replies; each
// message is JSON ended by a NUL byte).
type cdpConn struct {
	cmd     *exec.Cmd
	w       io.WriteCloser
	mu      sync.Mutex
	next    int
	pending map[int]chan cdpReply
	done    chan struct{}
}

type cdpReply struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func startCDP(ctx context.Context, bin string, args ...string) (*cdpConn, error) {
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, append(args, "--remote-debugging-pipe", "about:blank")...)
	cmd.ExtraFiles = []*os.File{cmdR, repW}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	cmdR.Close()
	repW.Close()
	c := &cdpConn{cmd: cmd, w: cmdW, pending: map[int]chan cdpReply{}, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		br := bufio.NewReader(repR)
		for {
			msg, err := br.ReadBytes(0)
			if err != nil {
				return
			}
			var r cdpReply
			if json.Unmarshal(msg[:len(msg)-1], &r) != nil || r.ID == 0 {
				continue // an event
			}
			c.mu.Lock()
			ch := c.pending[r.ID]
			delete(c.pending, r.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- r
			}
		}
	}()
	return c, nil
}

func (c *cdpConn) call(ctx context.Context, session, method string, params, result any) error {
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan cdpReply, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := c.w.Write(append(b, 0)); err != nil {
		return err
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return fmt.Errorf("%s: %s", method, r.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(r.Result, result)
		}
		return nil
	case <-c.done:
		return errors.New("chromium closed the pipe")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *cdpConn) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.call(ctx, "", "Browser.close", map[string]any{}, nil)
	c.w.Close()
	waited := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-waited
	}
}
