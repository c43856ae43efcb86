package nixtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Config is the NIX_CONFIG every Env runs Nix with.
const Config = "experimental-features = nix-command\n" +
	"build-users-group =\n" +
	"sandbox = false\n" +
	"substituters =\n" +
	"require-sigs = true"

// commandTimeout bounds every command run by Run, RunErr and the helpers built on them, so a
// stalled Nix (e.g. waiting 300 s on a stalled transfer) fails the test instead of hanging it.
const commandTimeout = 3 * time.Minute

// tools are the executables Require looks for.
var tools = []string{"nix", "nix-build", "nix-store"}

// Env is an isolated environment for running the Nix client. Create it with Require; the
// directories are removed when the test ends.
type Env struct {
	// Dir is the Env's private temporary directory; the others live inside it.
	Dir string
	// Home is HOME (nix-channel writes ~/.nix-channels and ~/.nix-defexpr here).
	Home string
	// CacheHome is XDG_CACHE_HOME (Nix's narinfo/nix-cache-info disk cache).
	CacheHome string
	// ConfDir is NIX_CONF_DIR. It holds an empty nix.conf; Nix's default netrc-file is
	// ConfDir/netrc, so a test may write one there.
	ConfDir string

	client  *client
	environ []string
	mu      sync.Mutex
	seq     int
}

// Require returns an isolated environment for the Nix client that ClientEnv chooses, or skips
// the test when that client is missing — except when the environment variable CI is
// non-empty, where a missing client is a test failure (never a silent skip in CI; see
// Missing). It logs the client and its version.
func Require(t testing.TB) *Env {
	t.Helper()
	return require(t, exec.LookPath, os.Getenv)
}

func require(t testing.TB, lookPath func(string) (string, error), getenv func(string) string) *Env {
	t.Helper()
	choice := getenv(ClientEnv)
	c, err := resolveClient(choice)
	if err != nil {
		t.Fatalf("nixtest: %v", err)
	}
	for _, tool := range tools {
		if _, err := lookPath(c.tool(tool)); err != nil {
			missing(t, getenv, fmt.Sprintf("nixtest: %s (%s), which the test drives, not found (%v)", tool, c, err))
		}
	}
	if c, err = chosenClient(choice); err != nil {
		t.Fatalf("nixtest: %v", err)
	}
	e := newEnv(t, c)
	c.initOnce.Do(func() { c.initErr = e.initStore() })
	if c.initErr != nil {
		t.Fatalf("nixtest: cannot initialise the Nix store of %s: %v", c, c.initErr)
	}
	t.Logf("nixtest: %s, %s", c.banner, c)
	return e
}

// Version returns the client's version, e.g. "2.26.3".
func (e *Env) Version() string { return e.client.version }

// AtLeast reports whether the client's version is at least v (e.g. "2.26"), so a test can
// expect the behaviour of the client it runs.
func (e *Env) AtLeast(v string) bool { return atLeast(e.client.version, v) }

// HostPath returns where this process finds the store path (or path below it) p: p itself,
// except for a client in a chroot, whose store is the chroot's /nix/store.
func (e *Env) HostPath(p string) string {
	if e.client.root == "" {
		return p
	}
	return filepath.Join(e.client.root, p)
}

func newEnv(t testing.TB, c *client) *Env {
	t.Helper()
	dir, err := os.MkdirTemp("", "nixtest-")
	if err != nil {
		t.Fatalf("nixtest: %v", err)
	}
	t.Cleanup(func() {
		if err := removeAll(dir); err != nil {
			t.Errorf("nixtest: removing %s: %v", dir, err)
		}
	})
	e := &Env{
		client:    c,
		Dir:       dir,
		Home:      filepath.Join(dir, "home"),
		CacheHome: filepath.Join(dir, "cache"),
		ConfDir:   filepath.Join(dir, "conf"),
	}
	for _, d := range []string{e.Home, e.CacheHome, e.ConfDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("nixtest: %v", err)
		}
	}
	conf := filepath.Join(e.ConfDir, "nix.conf")
	if err := os.WriteFile(conf, []byte("# nixtest: intentionally empty; settings come from NIX_CONFIG\n"), 0o644); err != nil {
		t.Fatalf("nixtest: %v", err)
	}
	e.environ = buildEnviron(os.Environ(), e.Home, e.CacheHome, e.ConfDir)
	return e
}

// buildEnviron returns base without anything that would make Nix read the caller's
// configuration, caches or store settings, plus the isolated settings.
func buildEnviron(base []string, home, cacheHome, confDir string) []string {
	noProxy := "127.0.0.1,localhost,::1"
	var env []string
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "NIX_SSL_CERT_FILE":
			env = append(env, kv)
		case k == "HOME", strings.HasPrefix(k, "NIX_"), strings.HasPrefix(k, "_NIX_"),
			strings.HasPrefix(k, "XDG_"):
			// replaced below
		case k == "NO_PROXY" || k == "no_proxy":
			if v != "" {
				noProxy = v + "," + noProxy
			}
		default:
			env = append(env, kv)
		}
	}
	return append(env,
		"HOME="+home,
		"XDG_CACHE_HOME="+cacheHome,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
		"XDG_STATE_HOME="+filepath.Join(home, ".local", "state"),
		"NIX_CONF_DIR="+confDir,
		"NIX_USER_CONF_FILES="+filepath.Join(confDir, "nix.conf"),
		"NIX_CONFIG="+Config,
		"NO_PROXY="+noProxy,
		"no_proxy="+noProxy,
	)
}

// initStore makes sure the client's Nix store and database exist before tests use them
// concurrently: Nix 2.8 initialising a fresh store from several processes at once fails with
// "…/db/schema' is corrupt". The file lock serialises this across test binaries.
func (e *Env) initStore() error {
	unlock := lockFile(filepath.Join(os.TempDir(), "nixtest-store-init.lock"))
	defer unlock()
	_, stderr, err := e.RunErr("nix-store", "--init")
	if err != nil {
		return fmt.Errorf("nix-store --init: %v\n%s", err, stderr)
	}
	return nil
}

// Environ returns the environment for an exec.Cmd running Nix in this Env.
func (e *Env) Environ() []string {
	return append([]string(nil), e.environ...)
}

// Command returns a command running name with args in this Env's environment. A name without
// a slash is the chosen client's tool (nix, nix-build, nix-store, …). Under a client in a chroot,
// a program named by absolute path runs inside the chroot, so a built store path's program (such
// as out/bin/hello) runs where its store is.
func (e *Env) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	name, args = e.client.command(name, args)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = e.Environ()
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// Run runs name with args, fails the test with the full stderr if it fails, and returns its
// stdout with surrounding white space trimmed.
func (e *Env) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	stdout, stderr, err := e.RunErr(name, args...)
	if err != nil {
		t.Fatalf("nixtest: %s: %v\nstderr:\n%s", cmdline(name, args), err, stderr)
	}
	return strings.TrimSpace(stdout)
}

// RunErr runs name with args and returns its stdout and stderr (untrimmed) and the error from
// running it (an *exec.ExitError if it exited non-zero).
func (e *Env) RunErr(name string, args ...string) (stdout, stderr string, err error) {
	return e.runEnv(nil, name, args...)
}

// runEnv is RunErr with extra environment entries (overriding the Env's).
func (e *Env) runEnv(extraEnv []string, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := e.Command(ctx, name, args...)
	cmd.Env = append(cmd.Env, extraEnv...) // exec uses the last value of duplicate keys
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err = cmd.Run()
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%w (killed after %v)", err, commandTimeout)
	}
	return so.String(), se.String(), err
}

// buildLocks serialises builds of the same expression within this process (map expr → *sync.Mutex).
var buildLocks sync.Map

// Build writes expr to a temporary .nix file, builds it with `nix-build --no-out-link` into the
// client's Nix store and returns the output paths it printed (read their files at HostPath).
//
// Builds of the same expression in one test binary are serialised here. Across processes Nix
// serialises them itself, but a Nix 2.8 build that finds an output locked by another process
// polls again only every 5 s; so give each test its own ClosureExpr tag (e.g. t.Name()).
func (e *Env) Build(t testing.TB, expr string) []string {
	t.Helper()
	mu, _ := buildLocks.LoadOrStore(expr, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	file := filepath.Join(e.newDir(t, "build"), "default.nix")
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		t.Fatalf("nixtest: %v", err)
	}
	out := strings.Fields(e.Run(t, "nix-build", "--no-out-link", file))
	if len(out) == 0 {
		t.Fatalf("nixtest: nix-build %s printed no output paths", file)
	}
	return out
}

// Closure returns the closure of paths (`nix-store -qR`), sorted.
func (e *Env) Closure(t testing.TB, paths ...string) []string {
	t.Helper()
	out := strings.Fields(e.Run(t, "nix-store", append([]string{"-qR"}, paths...)...))
	sort.Strings(out)
	return out
}

// CopyTo copies paths and their closure to the store at url (`nix copy --to url paths…`),
// e.g. "file:///some/dir?secret-key=/key.sec&compression=zstd".
func (e *Env) CopyTo(t testing.TB, url string, paths ...string) {
	t.Helper()
	e.Run(t, "nix", append([]string{"copy", "--to", url}, paths...)...)
}

// Substitute copies paths and their closure from the binary cache at url into a fresh, empty
// chroot store with require-sigs on, no substituters and only trustedKeys ("name:base64" public
// keys) trusted. It returns nil if Nix accepted every path, else an error carrying Nix's stderr
// (for an unsigned or wrongly signed path IsUntrustedSignature reports true for it). Each call
// uses a fresh narinfo disk cache, so it always sees the cache's current contents.
func (e *Env) Substitute(t testing.TB, url string, trustedKeys []string, paths ...string) error {
	t.Helper()
	dir := e.newDir(t, "subst")
	root := filepath.Join(dir, "root")
	cache := filepath.Join(dir, "cache")
	args := []string{"copy", "--from", url, "--to", root,
		"--option", "substituters", "",
		"--option", "require-sigs", "true",
		"--option", "secret-key-files", "",
		"--option", "trusted-public-keys", strings.Join(trustedKeys, " "),
	}
	args = append(args, paths...)
	_, stderr, err := e.runEnv([]string{"XDG_CACHE_HOME=" + cache}, "nix", args...)
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", cmdline("nix", args), err, strings.TrimSpace(stderr))
	}
	return nil
}

// GenerateKey makes a signing key pair named name (`nix-store --generate-binary-cache-key`) and
// returns the secret key file's path and the public key ("name:base64").
func (e *Env) GenerateKey(t testing.TB, name string) (secretFile, publicKey string) {
	t.Helper()
	dir := e.newDir(t, "key")
	secretFile = filepath.Join(dir, "secret")
	publicFile := filepath.Join(dir, "public")
	e.Run(t, "nix-store", "--generate-binary-cache-key", name, secretFile, publicFile)
	pub, err := os.ReadFile(publicFile)
	if err != nil {
		t.Fatalf("nixtest: %v", err)
	}
	return secretFile, strings.TrimSpace(string(pub))
}

// newDir makes a new, uniquely numbered directory inside e.Dir. Its name contains only
// [a-z0-9-], so it is safe inside Nix store URIs.
func (e *Env) newDir(t testing.TB, prefix string) string {
	t.Helper()
	e.mu.Lock()
	e.seq++
	n := e.seq
	e.mu.Unlock()
	dir := filepath.Join(e.Dir, fmt.Sprintf("%s-%d", prefix, n))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("nixtest: %v", err)
	}
	return dir
}

// removeAll removes dir even if it contains read-only directories (Nix makes store paths, also
// in chroot stores, read-only).
func removeAll(dir string) error {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(path, 0o755)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

func cmdline(name string, args []string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, a := range args {
		b.WriteByte(' ')
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$&;|<>*?()[]{}#~`") {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}
