package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/internal/nixtest"
)

// nixrepo runs the command in-process in dir and returns stdout, stderr and
// the exit code main would use.
func nixrepo(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	var out, errb bytes.Buffer
	err := execute(context.Background(), args, &out, &errb)
	code := 0
	if err != nil {
		fmt.Fprintln(&errb, "nixrepo:", oneLine(err))
		code = exitCode(err)
	}
	return out.String(), errb.String(), code
}

func mustRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, errs, code := nixrepo(t, dir, args...)
	if code != 0 {
		t.Fatalf("nixrepo %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// writeConfig writes a nixrepo.toml for one local repository whose incoming
// folder is incoming.
func writeConfig(t *testing.T, dir, storeURL, incoming string) {
	t.Helper()
	cfg := fmt.Sprintf(`version = 1
[store]
url = %q
[[repo]]
name = "nix-local"
type = "local"
priority = 30
signing_key_file = "keys/nix-local.sec"
incoming = [%q]
`, storeURL, incoming)
	if err := os.WriteFile(filepath.Join(dir, "nixrepo.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEndToEndWithNix is the foundation's acceptance test: real Nix builds a
// closure and pushes it to a staging binary cache, nixrepo ingests and
// publishes it into a file bucket, a plain static file server serves the
// folder, and a fresh Nix store substitutes the closure from it with
// require-sigs and only the nixrepo key trusted.
func TestEndToEndWithNix(t *testing.T) {
	env := nixtest.Require(t)
	dir := t.TempDir()
	staging := filepath.Join(dir, "incoming")
	writeConfig(t, dir, "file://./store", "file://./incoming")
	pub := strings.TrimSpace(mustRun(t, dir, "keygen", "nix-local-1", "--out", "keys/nix-local.sec"))

	paths := env.Build(t, nixtest.ClosureExpr(fmt.Sprintf("e2e-%d", os.Getpid()), 4))
	closure := env.Closure(t, paths...)
	if len(closure) < 3 {
		t.Fatalf("closure too small: %v", closure)
	}
	env.CopyTo(t, "file://"+staging, paths...)

	out := mustRun(t, dir, "run")
	if !strings.Contains(out, fmt.Sprintf("%d accepted, 0 already present, 0 refused", len(closure))) {
		t.Fatalf("run report:\n%s", out)
	}
	// run consumed the incoming folder.
	if left, _ := filepath.Glob(filepath.Join(staging, "*.narinfo")); len(left) != 0 {
		t.Fatalf("incoming not consumed: %v", left)
	}
	mustRun(t, dir, "verify")

	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "store"))))
	defer srv.Close()
	sub := srv.URL + "/nix-local"
	if err := env.Substitute(t, sub, []string{pub}, paths...); err != nil {
		t.Fatalf("substitution with the repository key failed: %v", err)
	}
	// The same with a key nixrepo did not sign with must fail: the test can fail.
	other := "other-1:" + strings.Repeat("A", 43) + "="
	if err := env.Substitute(t, sub, []string{other}, paths...); err == nil {
		t.Fatal("substitution succeeded without a trusted signature")
	}

	// setmeup prints lines that match what worked.
	conf := mustRun(t, dir, "setmeup", "--repo", "nix-local", "--url", srv.URL)
	for _, want := range []string{"extra-substituters = " + sub + "?priority=30", "extra-trusted-public-keys = " + pub} {
		if !strings.Contains(conf, want) {
			t.Errorf("setmeup output lacks %q:\n%s", want, conf)
		}
	}
	info, err := os.ReadFile(filepath.Join(dir, "store", "nix-local", "nix-cache-info"))
	if err != nil || string(info) != "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n" {
		t.Fatalf("nix-cache-info = %q, %v", info, err)
	}
	assertNoSidecars(t, filepath.Join(dir, "store"))

	// A second run has nothing to do.
	out = mustRun(t, dir, "run", "--json")
	var rep struct {
		Ingest []struct{ Accepted, Present, Refused int }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("run --json: %v\n%s", err, out)
	}
	if len(rep.Ingest) != 1 || rep.Ingest[0].Accepted+rep.Ingest[0].Present+rep.Ingest[0].Refused != 0 {
		t.Fatalf("second run did work: %s", out)
	}
}

func assertNoSidecars(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && (strings.HasSuffix(p, ".attrs") || strings.HasSuffix(p, ".tmp")) {
			t.Errorf("store folder holds %s", p)
		}
		return nil
	})
}

// TestDefaultConfigRun is the README's first command: `nixrepo run` on the
// built-in configuration in a copy of the source tree's layout.
func TestDefaultConfigRun(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join("..", "..", "testdata", "sample-cache"), filepath.Join(dir, "testdata", "sample-cache"))
	out, errs, code := nixrepo(t, dir, "run")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "3 accepted") || !strings.Contains(errs, "created signing key") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "var", "store", "nix-local", "nix-cache-info")); err != nil {
		t.Fatal(err)
	}
	// keep_incoming: the sample stays; the second run finds it all present.
	out = mustRun(t, dir, "run")
	if !strings.Contains(out, "0 accepted, 3 already present, 0 refused") {
		t.Fatalf("second run:\n%s", out)
	}
	mustRun(t, dir, "verify", "--repo", "nix-local")
	assertNoSidecars(t, filepath.Join(dir, "var"))
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHelpAndMisuse(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "nixrepo.toml"), []byte("version = 1\n[store]\nurl = \"file://./store\"\n[[repo]]\nname = \"nix-local\"\ntype = \"local\"\nsigning_key_file = \"k.sec\"\ngenerate_key = true\n"), 0o644)
	for _, c := range []string{"run", "ingest", "publish", "verify", "keygen", "setmeup", "config", "config check"} {
		out, _, code := nixrepo(t, dir, append(strings.Fields(c), "--help")...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: exit %d\n%s", c, code, out)
		}
	}
	if out, _, code := nixrepo(t, dir, "--version"); code != 0 || !strings.HasPrefix(out, "nixrepo version ") {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	if _, errs, code := nixrepo(t, dir, "search", "-r", "nix-local", "hello"); strings.Contains(errs, "unknown shorthand") {
		t.Errorf("search -r: exit %d, %q", code, errs)
	}
	empty := t.TempDir()
	tests := []struct {
		args []string
		code int
		want string
		dir  string // where to run, when not dir
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`, ""},
		{[]string{"ingest", "somewhere"}, 2, "--repo REPO is required", ""},
		{[]string{"ingest", "--repo", "nix-local"}, 2, "name at least one SOURCE", ""},
		{[]string{"ingest", "--repo", "nope", "x"}, 2, `no repository "nope"`, ""},
		{[]string{"keygen"}, 2, "expected one key NAME", ""},
		{[]string{"keygen", "k-1"}, 2, "--out FILE is required", ""},
		{[]string{"setmeup", "--repo", "nix-local"}, 2, "--url BASE are required", ""},
		{[]string{"setmeup", "--repo", "nix-local", "--url", "ftp://x"}, 2, "not an http(s) or file URL", ""},
		{[]string{"run", "extra"}, 2, "takes no arguments", ""},
		{[]string{"publish", "--bogus"}, 2, "unknown flag: --bogus", ""},
		{[]string{"--config", "missing.toml", "publish"}, 1, "missing.toml: no such file", ""},
		{[]string{"ingest", "--repo", "nix-local", "/does/not/exist"}, 1, "/does/not/exist", ""},
		// Outside nixrepo's source tree there is no built-in configuration.
		{[]string{"search", "hello"}, 2, "no nixrepo.toml in " + empty + ": pass --config FILE", empty},
		{[]string{"run"}, 2, "no nixrepo.toml in", empty},
	}
	for _, tc := range tests {
		where := dir
		if tc.dir != "" {
			where = tc.dir
		}
		_, errs, code := nixrepo(t, where, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("nixrepo %v: exit %d, stderr %q; want exit %d with %q", tc.args, code, errs, tc.code, tc.want)
		}
		if strings.Contains(errs, "nixrepo: nixrepo ") {
			t.Errorf("nixrepo %v: the error names the program twice: %q", tc.args, errs)
		}
		if n := strings.Count(strings.TrimSpace(errs), "\n"); n > 0 && code != 0 {
			t.Errorf("nixrepo %v: error is not one line: %q", tc.args, errs)
		}
	}
	if left, _ := os.ReadDir(empty); len(left) != 0 {
		t.Errorf("commands without a configuration created %d entries in their folder", len(left))
	}
}

func TestConfigCheckReportsLine(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.toml"), []byte("version = 1\n[store]\nurl = \"mem://\"\nsurl = 1\n"), 0o644)
	_, errs, code := nixrepo(t, dir, "--config", "bad.toml", "config", "check")
	if code != 1 || !strings.Contains(errs, "bad.toml:4: store.surl: unknown key") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestKeygenInteropWithNix(t *testing.T) {
	env := nixtest.Require(t)
	dir := t.TempDir()
	pub := strings.TrimSpace(mustRun(t, dir, "keygen", "interop-1", "--out", "k.sec"))
	// Nix derives the same public key from our secret key.
	cmd := env.Command(context.Background(), "nix", "key", "convert-secret-to-public")
	sec, _ := os.ReadFile(filepath.Join(dir, "k.sec"))
	cmd.Stdin = bytes.NewReader(sec)
	b, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("nix key convert-secret-to-public: %s", ee.Stderr)
		}
		t.Fatal(err)
	}
	if strings.TrimSpace(string(b)) != pub {
		t.Fatalf("Nix derives %q from our key, we print %q", b, pub)
	}
}

// TestConfigCheckRefusesSchemeAndReachesBucket: config check refuses a store
// URL no driver opens, reaches the bucket (an S3 endpoint nobody listens on
// fails the check, naming the store), and --offline skips that.
func TestConfigCheckRefusesSchemeAndReachesBucket(t *testing.T) {
	dir := t.TempDir()
	write := func(storeURL string) {
		cfg := fmt.Sprintf("version = 1\n[store]\nurl = %q\n[[repo]]\nname = \"r\"\ntype = \"local\"\nsigning_key_file = \"k.sec\"\ngenerate_key = true\n", storeURL)
		if err := os.WriteFile(filepath.Join(dir, "nixrepo.toml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("http://example.org/cache")
	if _, errs, code := nixrepo(t, dir, "config", "check"); code != 1 || !strings.Contains(errs, "store.url") || !strings.Contains(errs, "not http://") {
		t.Errorf("http:// store: exit %d, %q", code, errs)
	}
	write("file://./store")
	if out, errs, code := nixrepo(t, dir, "config", "check"); code != 0 || !strings.Contains(out, "(reachable)") {
		t.Errorf("folder store: exit %d, %q %q", code, out, errs)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	write("s3://nobucket?endpoint=http://" + addr + "&region=us-east-1&use_path_style=true&disable_https=true")
	if _, errs, code := nixrepo(t, dir, "config", "check"); code != 1 || !strings.Contains(errs, "store s3://nobucket") {
		t.Errorf("unreachable S3 store: exit %d, %q", code, errs)
	}
	if out, errs, code := nixrepo(t, dir, "config", "check", "--offline"); code != 0 || !strings.Contains(out, "--offline") {
		t.Errorf("unreachable S3 store, --offline: exit %d, %q %q", code, out, errs)
	}
}

// TestRunGoesOnWhenAStageFails: with a channels upstream that is down, run
// reports the failed mirror, still ingests and publishes, and exits 1; the
// JSON report names the failed stage.
func TestRunGoesOnWhenAStageFails(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join("..", "..", "testdata", "sample-cache"), filepath.Join(dir, "in"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close() // nobody answers there
	cfg := `version = 1
[store]
url = "file://./store"
[[repo]]
name = "nix-local"
type = "local"
signing_key_file = "k.sec"
generate_key = true
incoming = ["file://./in"]
[[repo]]
name = "mirror"
type = "remote"
upstream = "` + down + `"
trusted_keys = ["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="]
channels_upstream = "` + down + `"
channels = ["nixos-25.11"]
`
	os.WriteFile(filepath.Join(dir, "nixrepo.toml"), []byte(cfg), 0o644)
	out, errs, code := nixrepo(t, dir, "run")
	if code != 1 || !strings.Contains(errs, "run: mirror channels: repository mirror: mirror nixos-25.11") || !strings.Contains(errs, "1 stage(s) failed (mirror channels") {
		t.Errorf("run with the channels upstream down: exit %d\nstderr: %s", code, errs)
	}
	if !strings.Contains(out, "3 accepted") {
		t.Errorf("run did not ingest after the failed mirror:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "store", "nix-local", "nix-cache-info")); err != nil {
		t.Errorf("run did not publish after the failed mirror: %v", err)
	}
	jout, _, code := nixrepo(t, dir, "--json", "run")
	var rep struct {
		Errors []struct{ Stage, Error string } `json:"errors"`
	}
	if err := json.Unmarshal([]byte(jout), &rep); err != nil || code != 1 || len(rep.Errors) != 1 || rep.Errors[0].Stage != "mirror channels" {
		t.Errorf("run --json: exit %d, %v, %+v", code, err, rep)
	}
}
