package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/internal/store"
)

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestCommandClearsCrashLeftovers: any command that opens the store clears
// what crashed nixrepo processes left (their folders under the temporary
// root beside the store, and the spools and unpack folders older versions
// left in the system's temporary folder past a day), keeps a running
// process's folder, and removes its own folder when it ends.
func TestCommandClearsCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, "file://./store", "file://./incoming")
	root := filepath.Join(dir, "tmp")
	crashed := filepath.Join(root, "nixrepo-77777-1")
	live := filepath.Join(root, "nixrepo-88888-2")
	for _, d := range []string{crashed, live} {
		for _, p := range []string{".lock", "nixrepo-channel-1.tar.xz", "nixrepo-unpack-2/top/default.nix", "x.narinfo.18c2f5e0a1b2c3d4.tmp"} {
			os.MkdirAll(filepath.Dir(filepath.Join(d, p)), 0o700)
			if err := os.WriteFile(filepath.Join(d, p), []byte("partial"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The live process holds its lock (flock locks an open file, so this
	// conflicts with the command's attempt like another process's would).
	lock, err := os.Open(filepath.Join(live, ".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	// What versions before the temporary root left in the system's folder.
	spool, err := os.CreateTemp("", "nixrepo-channel-*.tar.xz")
	if err != nil {
		t.Fatal(err)
	}
	spool.Close()
	unpack, err := os.MkdirTemp("", "nixrepo-unpack-*")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(unpack, "f"), nil, 0o644)
	recent, err := os.CreateTemp("", "nixrepo-channel-*.tar.xz")
	if err != nil {
		t.Fatal(err)
	}
	recent.Close()
	t.Cleanup(func() { os.Remove(spool.Name()); os.RemoveAll(unpack); os.Remove(recent.Name()) })
	past := time.Now().Add(-48 * time.Hour)
	os.Chtimes(spool.Name(), past, past)
	os.Chtimes(unpack, past, past)
	tmpdirBefore, hadTMPDIR := os.LookupEnv("TMPDIR")

	mustRun(t, dir, "channel", "list")

	if exists(crashed) {
		t.Errorf("the crashed process's folder is still there: %s", crashed)
	}
	if !exists(filepath.Join(live, "nixrepo-unpack-2", "top", "default.nix")) {
		t.Errorf("the live process's folder was cleared: %s", live)
	}
	if exists(spool.Name()) || exists(unpack) {
		t.Errorf("the old spool (%v) or unpack folder (%v) in the system's temporary folder is still there", exists(spool.Name()), exists(unpack))
	}
	if !exists(recent.Name()) {
		t.Errorf("a spool younger than a day was removed: %s", recent.Name())
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 || ents[0].Name() != filepath.Base(live) {
		t.Errorf("after the command the temporary root holds %v; want only the live folder", ents)
	}
	if got, ok := os.LookupEnv("TMPDIR"); got != tmpdirBefore || ok != hadTMPDIR {
		t.Errorf("TMPDIR after the command = %q, want %q", got, tmpdirBefore)
	}
}

// TestFileBucketTempFilesInNixrepoFolder: a file bucket's write in progress
// lives in the store's reserved _nixrepo/tmp/ folder (same file system, so
// it is placed atomically), never beside its target, in the process's
// temporary folder nor in the system's temporary folder.
func TestFileBucketTempFilesInNixrepoFolder(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, "file://./store", "file://./incoming")
	cfg, err := config.Load(filepath.Join(dir, "nixrepo.toml"))
	if err != nil {
		t.Fatal(err)
	}
	sys := os.TempDir()
	d, err := startTemp(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if filepath.Dir(d.Path()) != filepath.Join(dir, "tmp") {
		t.Fatalf("process folder %s, want one in %s", d.Path(), filepath.Join(dir, "tmp"))
	}
	st, err := store.Open(context.Background(), cfg.Store.URL, cfg.Dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := st.NewWriter(context.Background(), "nix-local/abc.narinfo", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("StorePath: /nix/store/x\n"))
	var inFolder, elsewhere []string
	reserved := filepath.Join(dir, "store", "_nixrepo", "tmp")
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			if filepath.Dir(p) == reserved {
				inFolder = append(inFolder, p)
			} else {
				elsewhere = append(elsewhere, p)
			}
		}
		return nil
	})
	sysTmp, _ := filepath.Glob(filepath.Join(sys, "abc.narinfo.*.tmp"))
	if len(inFolder) != 1 || len(elsewhere) != 0 || len(sysTmp) != 0 {
		t.Fatalf("write in progress: %v in %s, %v elsewhere under the config folder, %v in %s", inFolder, reserved, elsewhere, sysTmp, sys)
	}
	w.Abort()
}
