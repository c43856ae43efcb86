package nixtest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of the program name on the host's PATH (exec.LookPath), for a
// test that runs it itself: xz, bzip2, chromium, or a Nix tool run directly on the host. It
// ignores ClientEnv: a Nix tool it returns is the host's Nix (Debian 12's Nix 2.8 on CI
// machines), whatever client Require chooses, so a test that must run with the chosen client
// uses Require and its Env instead. When name is missing the test skips, except when the
// environment variable CI is non-empty, where it fails (see Missing).
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	return requireTool(t, exec.LookPath, os.Getenv, name)
}

func requireTool(t testing.TB, lookPath func(string) (string, error), getenv func(string) string, name string) string {
	t.Helper()
	p, err := lookPath(name)
	if err != nil {
		missing(t, getenv, fmt.Sprintf("nixtest: %s is not installed (%v)", name, err))
	}
	return p
}

// Missing ends a test that cannot run because something it needs is not installed; what says
// which and how that showed. It skips the test, except when the environment variable CI is
// non-empty: there it fails it, since CI installs everything the tests need (.ci/run) and a
// skip would hide the gap.
func Missing(t testing.TB, what string) {
	t.Helper()
	missing(t, os.Getenv, what)
}

func missing(t testing.TB, getenv func(string) string, what string) {
	t.Helper()
	if ci := getenv("CI"); ci != "" {
		t.Fatalf("%s, and CI=%q is set, so this is a failure, not a skip", what, ci)
	}
	t.Skipf("%s; skipping the test", what)
}
