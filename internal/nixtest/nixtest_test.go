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

// runRequire calls require with a fake TB, lookPath and environment and returns what it
// skipped or failed with (require returning is reported as an error of t).
func runRequire(t *testing.T, lookPath func(string) (string, error), env map[string]string) *fakeTB {
	t.Helper()
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		require(f, lookPath, func(k string) string { return env[k] })
		t.Errorf("env %v: require returned instead of skipping/failing", env)
	}()
	<-done
	return f
}

func TestRequireMissingClientSkipsExceptInCI(t *testing.T) {
	var looked []string
	missing := func(p string) (string, error) {
		looked = append(looked, p)
		return "", errors.New("executable file not found in $PATH")
	}
	for _, choice := range []string{"", "2.8", "2.26", "/nonexistent/nix-client"} {
		for _, ci := range []string{"", "true", "1"} {
			looked = nil
			f := runRequire(t, missing, map[string]string{"CI": ci, ClientEnv: choice})
			if ci == "" && (f.skipped == "" || f.fatal != "") {
				t.Errorf("%s=%q, CI unset: skipped=%q fatal=%q, want a skip", ClientEnv, choice, f.skipped, f.fatal)
			}
			if ci != "" && (f.fatal == "" || f.skipped != "") {
				t.Errorf("%s=%q, CI=%q: skipped=%q fatal=%q, want a failure", ClientEnv, choice, ci, f.skipped, f.fatal)
			}
			c, _ := resolveClient(choice)
			if len(looked) != 1 || looked[0] != c.tool("nix") {
				t.Errorf("%s=%q: looked up %q, want only the chosen client's nix %q", ClientEnv, choice, looked, c.tool("nix"))
			}
			if msg := f.skipped + f.fatal; !strings.Contains(msg, c.String()) {
				t.Errorf("%s=%q: message %q does not name the client %q", ClientEnv, choice, msg, c)
			}
		}
	}
}

func TestRequireRefusesUnknownClient(t *testing.T) {
	found := func(p string) (string, error) { return p, nil }
	for _, choice := range []string{"2.18", "nix", "relative/dir"} {
		f := runRequire(t, found, map[string]string{ClientEnv: choice})
		if f.fatal == "" || !strings.Contains(f.fatal, ClientEnv) {
			t.Errorf("%s=%q: skipped=%q fatal=%q, want a failure naming %s", ClientEnv, choice, f.skipped, f.fatal, ClientEnv)
		}
	}
}

// TestRequireToolMissingSkipsExceptInCI: RequireTool returns the path PATH gives; a missing
// program skips the test, and fails it when CI is set, naming the program.
func TestRequireToolMissingSkipsExceptInCI(t *testing.T) {
	found := func(p string) (string, error) { return "/usr/bin/" + p, nil }
	missing := func(p string) (string, error) { return "", errors.New("executable file not found in $PATH") }
	for _, ci := range []string{"", "true", "1"} {
		getenv := func(k string) string { return map[string]string{"CI": ci}[k] }
		if p := requireTool(t, found, getenv, "xz"); p != "/usr/bin/xz" {
			t.Errorf("CI=%q: requireTool = %q, want /usr/bin/xz", ci, p)
		}
		f := &fakeTB{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			requireTool(f, missing, getenv, "bzip2")
			t.Errorf("CI=%q: requireTool returned instead of skipping/failing", ci)
		}()
		<-done
		if ci == "" && (f.skipped == "" || f.fatal != "") {
			t.Errorf("CI unset: skipped=%q fatal=%q, want a skip", f.skipped, f.fatal)
		}
		if ci != "" && (f.fatal == "" || f.skipped != "") {
			t.Errorf("CI=%q: skipped=%q fatal=%q, want a failure", ci, f.skipped, f.fatal)
		}
		if msg := f.skipped + f.fatal; !strings.Contains(msg, "bzip2") {
			t.Errorf("CI=%q: message %q does not name bzip2", ci, msg)
		}
	}
}

func TestResolveClient(t *testing.T) {
	folder := t.TempDir() // a client folder: bin/ and root/
	for _, d := range []string{"bin", "root"} {
		if err := os.Mkdir(filepath.Join(folder, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bare := t.TempDir() // a folder holding the tools, no chroot
	for _, c := range []struct {
		choice, bin, root, want string
	}{
		{"", "", "", ""},
		{"2.8", "", "", "2.8."},
		{"2.26", DefaultChroot226 + "/bin", DefaultChroot226 + "/root", "2.26."},
		{folder, folder + "/bin", folder + "/root", ""},
		{folder + "/bin", folder + "/bin", folder + "/root", ""},
		{bare + "/", bare, "", ""},
	} {
		got, err := resolveClient(c.choice)
		if err != nil {
			t.Errorf("resolveClient(%q): %v", c.choice, err)
			continue
		}
		if got.bin != c.bin || got.root != c.root || got.want != c.want {
			t.Errorf("resolveClient(%q) = bin %q root %q want %q; want bin %q root %q want %q",
				c.choice, got.bin, got.root, got.want, c.bin, c.root, c.want)
		}
	}
}

func TestClientCommand(t *testing.T) {
	host := &client{}
	chroot := &client{bin: "/c/bin", root: "/c/root"}
	for _, c := range []struct {
		cl        *client
		name      string
		wantName  string
		wantArgs0 string
	}{
		{host, "nix-build", "nix-build", "x"},
		{host, "/nix/store/abc-hello/bin/hello", "/nix/store/abc-hello/bin/hello", "x"},
		{chroot, "nix-build", "/c/bin/nix-build", "x"},
		{chroot, "/nix/store/abc-hello/bin/hello", "/c/bin/in-chroot", "/nix/store/abc-hello/bin/hello"},
		{chroot, "./relative", "./relative", "x"},
	} {
		name, args := c.cl.command(c.name, []string{"x"})
		if name != c.wantName || len(args) == 0 || args[0] != c.wantArgs0 || args[len(args)-1] != "x" {
			t.Errorf("%v.command(%q) = %q %q, want %q [%q … x]", c.cl, c.name, name, args, c.wantName, c.wantArgs0)
		}
	}
}

// TestCheckSharedNeedsSameFolders: a chroot that does not see the temporary folder and the
// working directory as the same folders is refused; one that does (here through symlinks, as
// bind mounts would) is accepted.
func TestCheckSharedNeedsSameFolders(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	// A temporary folder of the test's own, so that the working directory (a checkout may
	// well lie under /tmp) is never inside it.
	tmp := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	c := &client{bin: filepath.Join(root, "bin"), root: root}
	if err := c.checkShared(); err == nil || !strings.Contains(err.Error(), "TMPDIR") {
		t.Errorf("empty chroot: checkShared = %v, want an error naming TMPDIR", err)
	}
	// The same path inside, but another folder.
	if err := os.MkdirAll(filepath.Join(root, os.TempDir()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.checkShared(); err == nil || !strings.Contains(err.Error(), "TMPDIR") {
		t.Errorf("chroot with its own %s: checkShared = %v, want an error", os.TempDir(), err)
	}
	os.Remove(filepath.Join(root, os.TempDir()))
	if err := os.Symlink(os.TempDir(), filepath.Join(root, os.TempDir())); err != nil {
		t.Fatal(err)
	}
	if err := c.checkShared(); err == nil || !strings.Contains(err.Error(), "working directory") {
		t.Errorf("chroot without the working directory: checkShared = %v, want an error naming it", err)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(root, wd)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(wd, filepath.Join(root, wd)); err != nil && !errors.Is(err, fs.ErrExist) {
		t.Fatal(err)
	}
	if err := c.checkShared(); err != nil {
		t.Errorf("chroot sharing both folders: %v", err)
	}
}

func TestParseVersionAndAtLeast(t *testing.T) {
	for _, c := range []struct{ banner, version string }{
		{"nix (Nix) 2.8.0", "2.8.0"},
		{"nix (Nix) 2.26.3\n", "2.26.3"},
		{"nix (Lix, like Nix) 2.93.0", "2.93.0"},
		{"nix (Nix) 2.27.0pre20250101_dirty", "2.27.0pre20250101_dirty"},
	} {
		if v, err := parseVersion(c.banner); err != nil || v != c.version {
			t.Errorf("parseVersion(%q) = %q, %v; want %q", c.banner, v, err, c.version)
		}
	}
	for _, bad := range []string{"", "nix", "nix (Nix) unknown"} {
		if v, err := parseVersion(bad); err == nil {
			t.Errorf("parseVersion(%q) = %q, want an error", bad, v)
		}
	}
	for _, c := range []struct {
		v, min string
		want   bool
	}{
		{"2.8.0", "2.8", true},
		{"2.8.0", "2.26", false},
		{"2.26.3", "2.26", true},
		{"2.26.3", "2.8", true},
		{"2.26.3", "2.26.4", false},
		{"2.26", "2.26.0", true},
		{"2.100.0", "2.26", true},
		{"3.0", "2.26", true},
		{"2.27.0pre20250101", "2.27", true},
		{"2.27.0pre20250101", "2.27.1", false},
	} {
		if got := atLeast(c.v, c.min); got != c.want {
			t.Errorf("atLeast(%q, %q) = %v, want %v", c.v, c.min, got, c.want)
		}
	}
}

func TestIsUntrustedSignature(t *testing.T) {
	for _, c := range []struct {
		stderr string
		want   bool
	}{
		{"error: cannot add path '/nix/store/c132lffpf5zzqh902z2qdcndarxzs0lg-x' because it lacks a valid signature", true},
		{"error: cannot add path '/nix/store/c132lffpf5zzqh902z2qdcndarxzs0lg-x' because it lacks a signature by a trusted key", true},
		{"error: path '/nix/store/00000000000000000000000000000000-x' is required, but there is no substituter that can build it", false},
		{"error: NAR hash mismatch in input '/nix/store/…'", false},
		{"", false},
	} {
		if got := IsUntrustedSignature(c.stderr); got != c.want {
			t.Errorf("IsUntrustedSignature(%q) = %v, want %v", c.stderr, got, c.want)
		}
	}
}

// TestRequireReportsClient: the Env's version is what the chosen client's nix prints, and the
// version a choice demands.
func TestRequireReportsClient(t *testing.T) {
	e := Require(t)
	banner := e.Run(t, "nix", "--version")
	if !strings.HasSuffix(banner, " "+e.Version()) {
		t.Errorf("nix --version = %q, Version() = %q", banner, e.Version())
	}
	switch os.Getenv(ClientEnv) {
	case "2.8":
		if !e.AtLeast("2.8") || e.AtLeast("2.9") {
			t.Errorf("%s=2.8 gave Nix %s", ClientEnv, e.Version())
		}
	case "2.26":
		if !e.AtLeast("2.26") || e.AtLeast("2.27") {
			t.Errorf("%s=2.26 gave Nix %s", ClientEnv, e.Version())
		}
	}
}

func TestEnvIsolatesConfigAndCaches(t *testing.T) {
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

func TestRunErrReturnsStderr(t *testing.T) {
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
	got, err := os.ReadFile(e.HostPath(filepath.Join(top, "share/doc/tag")))
	if err != nil || string(got) != tag+"\n" {
		t.Errorf("tag file = %q, %v; want %q", got, err, tag+"\n")
	}
	if fi, err := os.Stat(e.HostPath(filepath.Join(top, "bin/hello"))); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("bin/hello not executable: %v %v", fi, err)
	}
	if l, err := os.Readlink(e.HostPath(filepath.Join(top, "README"))); err != nil || l != "share/doc/README" {
		t.Errorf("README symlink = %q, %v", l, err)
	}
	if l, err := os.Readlink(e.HostPath(filepath.Join(top, "lib/dep0"))); err != nil || !slices.Contains(closure, l) {
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

// TestSubstituteNeedsTrustedSignature proves Substitute only succeeds for a cache signed by a trusted key.
func TestSubstituteNeedsTrustedSignature(t *testing.T) {
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
			case !c.ok && !IsUntrustedSignature(err.Error()):
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
	if err := e.Substitute(t, srv.URL, nil, top); err == nil || !IsUntrustedSignature(err.Error()) {
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

// TestParallelBuildsAgree builds distinct closures and the same closure from several goroutines at
// once through Build.
func TestParallelBuildsAgree(t *testing.T) {
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
