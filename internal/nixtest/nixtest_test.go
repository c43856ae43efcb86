package nixtest

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTB records Skipf/Fatalf and ends the goroutine the way the testing package does.
type fakeTB struct {
	testing.TB // embedded only to satisfy the interface; unused methods panic
	mu         sync.Mutex
	skipped    string
	fatal      string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestRequireMissingNix(t *testing.T) {
	missing := func(string) (string, error) { return "", errors.New("executable file not found in $PATH") }
	for _, ci := range []string{"", "true", "1"} {
		f := &fakeTB{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			require(f, missing, func(k string) string {
				if k == "CI" {
					return ci
				}
				return ""
			})
			t.Errorf("CI=%q: require returned instead of skipping/failing", ci)
		}()
		<-done
		if ci == "" && (f.skipped == "" || f.fatal != "") {
			t.Errorf("CI unset: skipped=%q fatal=%q, want a skip", f.skipped, f.fatal)
		}
		if ci != "" && (f.fatal == "" || f.skipped != "") {
			t.Errorf("CI=%q: skipped=%q fatal=%q, want a failure", ci, f.skipped, f.fatal)
		}
	}
}

func TestEnvIsolation(t *testing.T) {
	e1, e2 := Require(t), Require(t)
	if e1.Dir == e2.Dir {
		t.Fatalf("two Envs share %s", e1.Dir)
	}
	env := map[string]string{}
	for _, kv := range e1.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := env[k]; dup {
			t.Errorf("duplicate %s in Environ", k)
		}
		env[k] = v
	}
	want := map[string]string{
		"HOME": e1.Home, "XDG_CACHE_HOME": e1.CacheHome, "NIX_CONF_DIR": e1.ConfDir, "NIX_CONFIG": Config,
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	for k := range env {
		if strings.HasPrefix(k, "NIX_") && k != "NIX_SSL_CERT_FILE" && want[k] == "" &&
			k != "NIX_USER_CONF_FILES" {
			t.Errorf("unexpected %s leaked into Environ", k)
		}
	}
	conf := e1.Run(t, "nix", "show-config")
	for _, line := range []string{
		"require-sigs = true", "sandbox = false", "substituters = ", "build-users-group = ",
		"netrc-file = " + filepath.Join(e1.ConfDir, "netrc"),
	} {
		if !slices.Contains(strings.Split(conf, "\n"), line) {
			t.Errorf("nix show-config lacks %q", line)
		}
	}
}

func TestRunErr(t *testing.T) {
	e := Require(t)
	stdout, stderr, err := e.RunErr("nix-store", "-q", "--references", "/nix/store/00000000000000000000000000000000-nixtest-missing")
	if err == nil {
		t.Fatalf("querying a missing path succeeded: %q", stdout)
	}
	if !strings.Contains(stderr, "is not valid") {
		t.Errorf("stderr = %q, want it to say the path is not valid", stderr)
	}
}

func TestClosureExpr(t *testing.T) {
	t.Parallel()
	e := Require(t)
	tag := `nixtest "quoted" \back ${notinterpolated} '' $out tab	end`
	out := e.Build(t, ClosureExpr(tag, 4))
	if len(out) != 1 || !strings.HasSuffix(out[0], "-nixtest-node3-1.0") {
		t.Fatalf("Build = %q, want one nixtest-node3-1.0 path", out)
	}
	top := out[0]
	closure := e.Closure(t, top)
	if len(closure) != 4 || !slices.IsSorted(closure) || !slices.Contains(closure, top) {
		t.Fatalf("closure = %q, want 4 sorted paths including %s", closure, top)
	}
	refs := strings.Fields(e.Run(t, "nix-store", "-q", "--references", top))
	if len(refs) != 2 {
		t.Errorf("top references %q, want node2 and node0", refs)
	}
	got, err := os.ReadFile(filepath.Join(top, "share/doc/tag"))
	if err != nil || string(got) != tag+"\n" {
		t.Errorf("tag file = %q, %v; want %q", got, err, tag+"\n")
	}
	if fi, err := os.Stat(filepath.Join(top, "bin/hello")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("bin/hello not executable: %v %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(top, "README")); err != nil || l != "share/doc/README" {
		t.Errorf("README symlink = %q, %v", l, err)
	}
	if l, err := os.Readlink(filepath.Join(top, "lib/dep0")); err != nil || !slices.Contains(closure, l) {
		t.Errorf("lib/dep0 = %q, %v; want a path in the closure", l, err)
	}
	if hello := e.Run(t, filepath.Join(top, "bin/hello")); hello != "nixtest-node3-1.0" {
		t.Errorf("bin/hello printed %q", hello)
	}

	other := e.Build(t, ClosureExpr(tag+"x", 3))
	if len(other) != 1 || other[0] == top {
		t.Fatalf("different tag gave %q", other)
	}
	for _, p := range e.Closure(t, other...) {
		if slices.Contains(closure, p) {
			t.Errorf("%s is in the closures of two different tags", p)
		}
	}
}

func TestClosureExprPanicsForSmallN(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("ClosureExpr(_, 2) did not panic")
		}
	}()
	ClosureExpr("x", 2)
}

// TestSubstitute proves Substitute only succeeds for a cache signed by a trusted key.
func TestSubstitute(t *testing.T) {
	t.Parallel()
	e := Require(t)
	top := e.Build(t, ClosureExpr("nixtest-substitute", 3))
	root := t.TempDir()
	sec, pub := e.GenerateKey(t, "nixtest-good-1")
	_, otherPub := e.GenerateKey(t, "nixtest-other-1")
	// Same key name, different key: the name alone must not be enough.
	_, impostorPub := e.GenerateKey(t, "nixtest-good-1")
	if !strings.HasPrefix(pub, "nixtest-good-1:") || pub == impostorPub {
		t.Fatalf("GenerateKey public keys %q, %q", pub, impostorPub)
	}
	e.CopyTo(t, "file://"+filepath.Join(root, "signed")+"?secret-key="+sec, top...)
	e.CopyTo(t, "file://"+filepath.Join(root, "unsigned")+"?compression=zstd", top...)
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	t.Cleanup(srv.Close) // not defer: the parallel subtests run after this function returns

	for _, c := range []struct {
		name, cache string
		keys        []string
		ok          bool
	}{
		{"signed/trusted", "signed", []string{pub}, true},
		{"signed/trusted-among-others", "signed", []string{otherPub, pub}, true},
		{"signed/untrusted", "signed", []string{otherPub}, false},
		{"signed/same-name-other-key", "signed", []string{impostorPub}, false},
		{"signed/no-keys", "signed", nil, false},
		{"unsigned/trusted", "unsigned", []string{pub}, false},
		{"missing-path", "signed", []string{pub}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			paths := top
			if c.name == "missing-path" {
				paths = []string{"/nix/store/00000000000000000000000000000000-nixtest-missing"}
			}
			start := time.Now()
			err := e.Substitute(t, srv.URL+"/"+c.cache, c.keys, paths...)
			t.Logf("Substitute took %v; err = %v", time.Since(start).Round(time.Millisecond), err)
			switch {
			case c.ok && err != nil:
				t.Fatalf("Substitute failed: %v", err)
			case !c.ok && err == nil:
				t.Fatal("Substitute succeeded, want failure")
			case c.name == "missing-path":
				if !strings.Contains(err.Error(), "no substituter that can build it") {
					t.Errorf("error does not say the path is missing: %v", err)
				}
			case !c.ok && !strings.Contains(err.Error(), "lacks a valid signature"):
				t.Errorf("error does not mention the signature: %v", err)
			}
		})
	}
}

// TestSampleCache checks that testdata/sample-cache is a valid, unsigned binary cache of the
// closure that testdata/sample.nix describes.
func TestSampleCache(t *testing.T) {
	t.Parallel()
	e := Require(t)
	dir, err := filepath.Abs("../../testdata/sample-cache")
	if err != nil {
		t.Fatal(err)
	}
	top := e.Run(t, "nix", "eval", "--raw", "--file", "../../testdata/sample.nix", "outPath")
	if !strings.HasSuffix(top, "-hello-greeting-1.0") {
		t.Fatalf("sample.nix outPath = %q", top)
	}
	// Serve it over HTTP: opening a file:// store makes Nix create log/ and realisations/ in it.
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	// The cache is unsigned: with require-sigs Nix must refuse it ...
	if err := e.Substitute(t, srv.URL, nil, top); err == nil || !strings.Contains(err.Error(), "lacks a valid signature") {
		t.Errorf("unsigned sample cache with require-sigs: err = %v, want a signature error", err)
	}
	// ... and without signature checks it must yield the whole closure, hashes verified.
	store := filepath.Join(e.newDir(t, "sample"), "store")
	e.Run(t, "nix", "copy", "--no-check-sigs", "--from", srv.URL, "--to", store, top)
	var names []string
	for _, p := range strings.Fields(e.Run(t, "nix", "path-info", "--store", store, "--recursive", top)) {
		names = append(names, strings.SplitN(filepath.Base(p), "-", 2)[1])
	}
	slices.Sort(names)
	want := []string{"greeting-data-2.1", "greeting-lib-0.3", "hello-greeting-1.0"}
	if !slices.Equal(names, want) {
		t.Errorf("sample closure = %q, want %q", names, want)
	}
	var size int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".attrs") {
			t.Errorf("unexpected .attrs file %s", path)
		}
		if fi, err := d.Info(); err == nil && d.Type().IsRegular() {
			size += fi.Size()
		}
		return nil
	})
	if size > 100<<10 {
		t.Errorf("sample cache is %d bytes, want < 100 KiB", size)
	}
}

// TestParallelBuilds builds distinct closures and the same closure from several goroutines at
// once through Build.
func TestParallelBuilds(t *testing.T) {
	t.Parallel()
	e := Require(t)
	shared := fmt.Sprintf("nixtest-parallel-%d", time.Now().UnixNano())
	const workers = 3
	results := make([][]string, workers)
	t.Run("group", func(t *testing.T) {
		for i := range workers {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				e := Require(t)
				own := e.Build(t, ClosureExpr(fmt.Sprintf("%s-%d", shared, i), 3))
				if c := e.Closure(t, own...); len(c) != 3 {
					t.Errorf("closure of %q = %q", own, c)
				}
				results[i] = e.Build(t, ClosureExpr(shared, 5))
			})
		}
	})
	for i := 1; i < workers; i++ {
		if !slices.Equal(results[i], results[0]) {
			t.Errorf("worker %d built %q, worker 0 built %q", i, results[i], results[0])
		}
	}
	if c := e.Closure(t, results[0]...); len(c) != 5 {
		t.Errorf("closure = %q, want 5 paths", c)
	}
}

// TestConcurrentNixBuildSameDerivations starts several nix-build processes for the same, never
// built derivations at once, as test binaries of different packages may. Nix must serialise
// them with its path locks. It takes about 5 s: that is how long Nix 2.8 waits before retrying
// a locked output.
func TestConcurrentNixBuildSameDerivations(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ~5 s (Nix's lock polling interval)")
	}
	t.Parallel()
	e := Require(t)
	file := filepath.Join(e.newDir(t, "concurrent"), "default.nix")
	expr := ClosureExpr(fmt.Sprintf("nixtest-concurrent-%d", time.Now().UnixNano()), 4)
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	const procs = 4
	outs := make([]string, procs)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() {
			stdout, stderr, err := e.RunErr("nix-build", "--no-out-link", file)
			if err != nil {
				t.Errorf("nix-build #%d: %v\n%s", i, err, stderr)
			}
			outs[i] = strings.TrimSpace(stdout)
		})
	}
	wg.Wait()
	for i := range procs {
		if outs[i] == "" || outs[i] != outs[0] {
			t.Errorf("nix-build outputs differ: %q", outs)
			break
		}
	}
}
