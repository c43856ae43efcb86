package nixtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClientEnv is the environment variable that chooses the Nix client of a test run:
//
//	unset or ""  the nix, nix-build, … on PATH, whatever version they are
//	2.8          the same, and they must be Nix 2.8.x (Debian 12's nix-bin)
//	2.26         the client folder DefaultChroot226, and it must be Nix 2.26.x
//	/some/dir    a client folder (dir/bin holds the tools, dir/root the chroot if any),
//	             or a folder holding the tools themselves
const ClientEnv = "NIXTEST_CLIENT"

// DefaultChroot226 is where .ci/nix226.sh makes the Debian 13 chroot holding Nix 2.26 and its
// wrappers (root/ and bin/).
const DefaultChroot226 = "/var/cache/nixrepo-ci/nix-2.26"

// inChroot is the wrapper in a chroot client's bin folder that runs any command inside the
// chroot, in the caller's environment and working directory.
const inChroot = "in-chroot"

// client is one Nix installation that tests drive.
type client struct {
	choice  string // the value of ClientEnv, "" for the default
	bin     string // folder holding the tools; "" = look them up on PATH
	root    string // the chroot the tools run in (its /nix/store is the store); "" = none
	want    string // the version prefix the choice demands ("2.8."), "" = any
	version string // "2.26.3", set by detect
	banner  string // what `nix --version` printed

	initOnce sync.Once
	initErr  error
}

// resolveClient maps the value of ClientEnv to a client (not yet detected).
func resolveClient(choice string) (*client, error) {
	c := &client{choice: choice}
	switch {
	case choice == "":
	case choice == "2.8":
		c.want = "2.8."
	case choice == "2.26":
		c.want = "2.26."
		c.bin, c.root = filepath.Join(DefaultChroot226, "bin"), filepath.Join(DefaultChroot226, "root")
	case filepath.IsAbs(choice):
		dir := filepath.Clean(choice)
		if fi, err := os.Stat(filepath.Join(dir, "bin")); err == nil && fi.IsDir() {
			c.bin = filepath.Join(dir, "bin")
		} else {
			c.bin, dir = dir, filepath.Dir(dir)
		}
		if fi, err := os.Stat(filepath.Join(dir, "root")); err == nil && fi.IsDir() {
			c.root = filepath.Join(dir, "root")
		}
	default:
		return nil, fmt.Errorf("%s=%q: want 2.8, 2.26 or the absolute path of a client folder", ClientEnv, choice)
	}
	return c, nil
}

// String names the client for messages.
func (c *client) String() string {
	switch {
	case c.bin == "":
		return "Nix on PATH"
	case c.root != "":
		return "Nix in the chroot " + c.root
	}
	return "Nix in " + c.bin
}

// tool returns what to execute for the Nix tool name (nix, nix-build, …).
func (c *client) tool(name string) string {
	if c.bin == "" {
		return name
	}
	return filepath.Join(c.bin, name)
}

// command returns the program and arguments that run name with args with this client: a tool
// name (no slash) is the client's tool; under a chroot client a program named by path (such as
// a built store path's bin/hello) runs inside the chroot, where its store is.
func (c *client) command(name string, args []string) (string, []string) {
	switch {
	case !strings.Contains(name, "/"):
		return c.tool(name), args
	case c.root != "" && filepath.IsAbs(name):
		return filepath.Join(c.bin, inChroot), append([]string{name}, args...)
	}
	return name, args
}

// detect runs `nix --version` and checks it against the version the choice demands.
func (c *client) detect() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.tool("nix"), "--version")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent"}
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s --version: %v", c.tool("nix"), err)
	}
	c.banner = strings.TrimSpace(string(out))
	c.version, err = parseVersion(c.banner)
	if err != nil {
		return err
	}
	if c.want != "" && !strings.HasPrefix(c.version+".", c.want) {
		return fmt.Errorf("%s=%s chose %s, but it is Nix %s", ClientEnv, c.choice, c, c.version)
	}
	return nil
}

// checkShared makes sure Nix in the chroot sees the folders the tests pass it (the temporary
// folder, where Env and t.TempDir directories live, and the working directory) as the same
// folders at the same paths. The chroot is in this mount namespace, so root+dir as seen from
// here is what the chroot sees as dir.
func (c *client) checkShared() error {
	if c.root == "" {
		return nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	for _, d := range []struct{ what, path string }{{"the temporary folder (TMPDIR)", os.TempDir()}, {"the working directory", wd}} {
		host, err := os.Stat(d.path)
		if err != nil {
			return err
		}
		inside, err := os.Stat(filepath.Join(c.root, d.path))
		if err != nil || !os.SameFile(host, inside) {
			return fmt.Errorf("the chroot %s does not see %s %s as the same folder at the same path: "+
				"run .ci/nix226.sh (it bind-mounts its work folder, by default /var/tmp/nixtest, and the checkout) "+
				"and run the tests with TMPDIR under that work folder", c.root, d.what, d.path)
		}
	}
	return nil
}

// parseVersion returns the version in `nix --version` output such as "nix (Nix) 2.26.3".
func parseVersion(banner string) (string, error) {
	f := strings.Fields(banner)
	if len(f) == 0 {
		return "", fmt.Errorf("nix --version printed nothing")
	}
	v := f[len(f)-1]
	if _, err := versionParts(v); err != nil {
		return "", fmt.Errorf("nix --version printed %q: %v", banner, err)
	}
	return v, nil
}

// versionParts splits "2.26.3" (or "2.26", or "2.26.3pre20250101") into its leading numbers; a
// part with a suffix ends the version.
func versionParts(v string) ([]int, error) {
	var parts []int
	for _, s := range strings.Split(v, ".") {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return nil, fmt.Errorf("version %q is not dotted numbers", v)
		}
		parts = append(parts, n)
		if i < len(s) {
			break
		}
	}
	return parts, nil
}

// atLeast reports whether version v is at least min (both dotted numbers; missing parts are 0).
func atLeast(v, min string) bool {
	a, err1 := versionParts(v)
	b, err2 := versionParts(min)
	if err1 != nil || err2 != nil {
		panic(fmt.Sprintf("nixtest: comparing versions %q and %q", v, min))
	}
	for i := range max(len(a), len(b)) {
		x, y := 0, 0
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return x > y
		}
	}
	return true
}

var (
	clientsMu sync.Mutex
	clients   = map[string]*clientResult{}
)

type clientResult struct {
	c   *client
	err error
}

// chosenClient returns the client for choice, resolved, detected and checked once per process.
func chosenClient(choice string) (*client, error) {
	clientsMu.Lock()
	defer clientsMu.Unlock()
	if r, ok := clients[choice]; ok {
		return r.c, r.err
	}
	c, err := resolveClient(choice)
	if err == nil {
		err = c.detect()
	}
	if err == nil {
		err = c.checkShared()
	}
	clients[choice] = &clientResult{c, err}
	return c, err
}

// Messages of Nix refusing a path for its signatures, by client.
var untrustedSignature = []string{
	"lacks a valid signature",            // Nix 2.8
	"lacks a signature by a trusted key", // Nix 2.26 (and later)
}

// IsUntrustedSignature reports whether Nix's stderr says it refused a path because no trusted
// key signed it, in the wording of any client the tests run (Nix 2.8: "lacks a valid
// signature"; Nix 2.26: "lacks a signature by a trusted key").
func IsUntrustedSignature(stderr string) bool {
	for _, m := range untrustedSignature {
		if strings.Contains(stderr, m) {
			return true
		}
	}
	return false
}
