package tmpdir

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as another nixrepo process: it starts
// a folder in the root the variable names, prints the folder's path and
// waits until its standard input closes or it is killed.
const helperEnv = "NIXREPO_TMPDIR_HELPER_ROOT"

func TestMain(m *testing.M) {
	if root := os.Getenv(helperEnv); root != "" {
		d, err := Start(root)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(d.Path())
		bufio.NewReader(os.Stdin).ReadString('\n')
		d.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// otherProcess starts a second process that holds a folder in root and
// returns the folder and the process.
func otherProcess(t *testing.T, root string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+root, "TMPDIR="+systemTemp)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, root) {
		t.Fatalf("helper process: %q %v", line, err)
	}
	return strings.TrimSpace(line), cmd
}

// leftovers fills dir with what a crashed process leaves: a channel spool,
// an unpack folder and a file bucket's write in progress.
func leftovers(t *testing.T, dir string) {
	t.Helper()
	for _, p := range []string{"nixrepo-channel-123.tar.xz", "nixrepo-unpack-456/top/default.nix", "abc.narinfo.18c2f5e0a1b2c3d4.tmp"} {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// withSystemTemp points the package's idea of the system's temporary
// folder at a test folder.
func withSystemTemp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	old := systemTemp
	systemTemp = dir
	t.Cleanup(func() { systemTemp = old })
	return dir
}

// TestStartClearsCrashedProcessFolders: the folder of a process killed
// (SIGKILL, so nothing of its own ran) is removed by the next Start, with
// everything in it, while the folder of a process that runs is kept.
func TestStartClearsCrashedProcessFolders(t *testing.T) {
	withSystemTemp(t)
	root := t.TempDir()
	crashed, c1 := otherProcess(t, root)
	live, _ := otherProcess(t, root)
	leftovers(t, crashed)
	leftovers(t, live)
	c1.Process.Signal(syscall.SIGKILL)
	c1.Wait()
	if !exists(filepath.Join(crashed, "nixrepo-unpack-456")) {
		t.Fatal("the killed process removed its folder")
	}

	d, err := Start(root)
	if err != nil {
		t.Fatal(err)
	}
	if exists(crashed) {
		t.Errorf("the crashed process's folder %s is still there", crashed)
	}
	if !exists(filepath.Join(live, "nixrepo-channel-123.tar.xz")) {
		t.Errorf("the live process's folder %s was cleared", live)
	}
	if !exists(d.Path()) || filepath.Dir(d.Path()) != root {
		t.Errorf("own folder %s not in %s", d.Path(), root)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(d.Path()) {
		t.Errorf("Close left %s", d.Path())
	}
}

// TestStartMovesTMPDIR: while the folder is started, os.TempDir (and so
// os.CreateTemp(""), os.MkdirTemp("") and fileblob) points into it; Close
// restores TMPDIR as it was, set or unset.
func TestStartMovesTMPDIR(t *testing.T) {
	withSystemTemp(t)
	for _, prev := range []string{"", "/some/where"} {
		if prev == "" {
			t.Setenv("TMPDIR", "x")
			os.Unsetenv("TMPDIR")
		} else {
			t.Setenv("TMPDIR", prev)
		}
		root := t.TempDir()
		d, err := Start(root)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.CreateTemp("", "nixrepo-channel-*.tar.xz")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if os.TempDir() != d.Path() || filepath.Dir(f.Name()) != d.Path() {
			t.Fatalf("TempDir %s, spool %s; want both in %s", os.TempDir(), f.Name(), d.Path())
		}
		d.Close()
		if got, ok := os.LookupEnv("TMPDIR"); got != prev || ok != (prev != "") {
			t.Fatalf("TMPDIR after Close = %q (set: %v), want %q", got, ok, prev)
		}
	}
}

// TestSweepLocklessFolders: a process folder without a lock file is being
// set up unless it is older than the grace period; other names are never
// touched.
func TestSweepLocklessFolders(t *testing.T) {
	root := t.TempDir()
	young := filepath.Join(root, "nixrepo-1-1")
	old := filepath.Join(root, "nixrepo-2-2")
	other := filepath.Join(root, "nixrepo-cache")
	for _, d := range []string{young, old, other} {
		os.Mkdir(d, 0o700)
	}
	past := time.Now().Add(-2 * lockGrace)
	os.Chtimes(old, past, past)
	os.Chtimes(other, past, past)
	removed := Sweep(root)
	if len(removed) != 1 || removed[0] != old || exists(old) || !exists(young) || !exists(other) {
		t.Fatalf("removed %v; young %v, other %v", removed, exists(young), exists(other))
	}
}

// TestSweepLegacyRemovesOldLeftovers: what earlier versions left in the system's temporary
// folder goes once older than LegacyAge; younger ones and other names stay.
func TestSweepLegacyRemovesOldLeftovers(t *testing.T) {
	sys := withSystemTemp(t)
	leftovers(t, sys)
	young := filepath.Join(sys, "nixrepo-channel-999.tar.xz")
	os.WriteFile(young, nil, 0o644)
	other := filepath.Join(sys, "nixrepo-channel-1.tar.xz.keep")
	os.WriteFile(other, nil, 0o644)
	past := time.Now().Add(-2 * LegacyAge)
	for _, p := range []string{"nixrepo-channel-123.tar.xz", "nixrepo-unpack-456", "abc.narinfo.18c2f5e0a1b2c3d4.tmp", "nixrepo-channel-1.tar.xz.keep"} {
		os.Chtimes(filepath.Join(sys, p), past, past)
	}
	d, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for p, want := range map[string]bool{"nixrepo-channel-123.tar.xz": false, "nixrepo-unpack-456": false, "nixrepo-channel-999.tar.xz": true,
		"nixrepo-channel-1.tar.xz.keep": true, "abc.narinfo.18c2f5e0a1b2c3d4.tmp": true} {
		if got := exists(filepath.Join(sys, p)); got != want {
			t.Errorf("%s: exists %v, want %v", p, got, want)
		}
	}
}

// TestRootPrefersTempDirThenBucketFolder: temp_dir when configured; else tmp beside a file bucket's
// folder; else (or when that cannot be made) nixrepo-UID in the system's
// temporary folder, private to the user.
func TestRootPrefersTempDirThenBucketFolder(t *testing.T) {
	sys := withSystemTemp(t)
	base := t.TempDir()
	blocker := filepath.Join(base, "file")
	os.WriteFile(blocker, nil, 0o644)
	own := filepath.Join(sys, fmt.Sprintf("nixrepo-%d", os.Getuid()))
	for _, tc := range []struct{ configured, store, want string }{
		{filepath.Join(base, "conf"), filepath.Join(base, "var/store"), filepath.Join(base, "conf")},
		{"", filepath.Join(base, "var/store"), filepath.Join(base, "var/tmp")},
		{"", "", own},
		{"", filepath.Join(blocker, "store"), own},
	} {
		got, err := Root(tc.configured, tc.store)
		if err != nil || got != tc.want {
			t.Errorf("Root(%q, %q) = %q, %v; want %q", tc.configured, tc.store, got, err, tc.want)
		}
		if fi, err := os.Lstat(got); err != nil || !fi.IsDir() {
			t.Errorf("%s not created: %v", got, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(base, "var")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("the store's parent folder, made for tmp beside it, has mode %v (%v), want 0755", fi.Mode().Perm(), err)
	}
	if fi, err := os.Stat(filepath.Join(base, "var/tmp")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the temporary root has mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	if _, err := Root(blocker, ""); err == nil {
		t.Error("a configured temp_dir that is a file was accepted")
	}
	os.Chmod(own, 0o777)
	if _, err := Root("", ""); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(own); fi.Mode().Perm() != 0o700 {
		t.Errorf("the shared-folder root has mode %v, want 0700", fi.Mode().Perm())
	}
	os.RemoveAll(own)
	os.Symlink(base, own)
	if _, err := Root("", ""); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("a symlink in place of the shared-folder root: %v", err)
	}
}
