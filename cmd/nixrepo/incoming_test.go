package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sampleDir is the sample binary cache made by real Nix.
var sampleDir = filepath.Join("..", "..", "testdata", "sample-cache")

// snapshotFiles reads every regular file under dir (relative name → bytes).
func snapshotFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestRunRefusesIncomingNarFolderLinkedIntoTheRepository: an uploader puts
// copies of narinfos the repository already has in the incoming folder,
// with "nar" a link to the repository's own nar/ folder. `nixrepo run`
// (which consumes) must refuse those paths, exit 1, and delete nothing of
// the repository.
func TestRunRefusesIncomingNarFolderLinkedIntoTheRepository(t *testing.T) {
	dir := t.TempDir()
	incoming := filepath.Join(dir, "incoming")
	writeConfig(t, dir, "file://./store", "file://./incoming")
	mustRun(t, dir, "keygen", "nix-local-1", "--out", "keys/nix-local.sec")
	copyDir(t, sampleDir, incoming)
	if out := mustRun(t, dir, "run"); !strings.Contains(out, "3 accepted") {
		t.Fatalf("first run:\n%s", out)
	}
	repoDir := filepath.Join(dir, "store", "nix-local")
	before := snapshotFiles(t, repoDir)

	narinfos, _ := filepath.Glob(filepath.Join(sampleDir, "*.narinfo"))
	for _, p := range narinfos {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(incoming, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(incoming, "nar")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(repoDir, "nar"), filepath.Join(incoming, "nar")); err != nil {
		t.Fatal(err)
	}

	out, errs, code := nixrepo(t, dir, "run")
	if code != 1 {
		t.Errorf("exit %d, want 1 (paths refused)\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if strings.Count(out, "nar is a symbolic link") != len(narinfos) {
		t.Errorf("want every path refused for the linked nar folder:\n%s", out)
	}
	after := snapshotFiles(t, repoDir)
	for rel, b := range before {
		if got, ok := after[rel]; !ok || !bytes.Equal(got, b) {
			t.Errorf("repository file %s was deleted or changed", rel)
		}
	}
	mustRun(t, dir, "verify", "--repo", "nix-local")
}

// TestIngestConsumeRefusesFIFOAndOversizedNarInfo: a FIFO named like a
// narinfo and a narinfo over 1 MiB are refused with their reasons (the
// FIFO promptly: opening it would block), `ingest --consume` exits 1, and
// the rest of the folder is ingested and consumed.
func TestIngestConsumeRefusesFIFOAndOversizedNarInfo(t *testing.T) {
	dir := t.TempDir()
	incoming := filepath.Join(dir, "incoming")
	writeConfig(t, dir, "file://./store", "file://./incoming")
	mustRun(t, dir, "keygen", "nix-local-1", "--out", "keys/nix-local.sec")
	copyDir(t, sampleDir, incoming)
	// hello-greeting's narinfo, padded past 1 MiB with a key Nix ignores.
	const hello = "wp6h81bmqyf5awd57zi4icjq52bzb9kh.narinfo"
	p := filepath.Join(incoming, hello)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b = append(append(b, "X-Padding: "+strings.Repeat("a", 2<<20)...), '\n')
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(incoming, "0000000000000000000000000000000a.narinfo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Releases a reader blocked on the FIFO, should there be one.
		if fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			syscall.Close(fd)
		}
	})

	type result struct {
		out, errs string
		code      int
	}
	done := make(chan result, 1)
	go func() {
		out, errs, code := nixrepo(t, dir, "ingest", "--repo", "nix-local", "--consume", "--json", "incoming")
		done <- result{out, errs, code}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ingest did not finish within 30s (blocked on the FIFO?)")
	}
	if res.code != 1 {
		t.Errorf("exit %d, want 1\n%s\n%s", res.code, res.out, res.errs)
	}
	var reps []struct {
		Accepted, Refused, Consumed int
		Paths                       []struct{ StorePath, Outcome, Reason string }
	}
	if err := json.Unmarshal([]byte(res.out), &reps); err != nil || len(reps) != 1 {
		t.Fatalf("report: %v\n%s", err, res.out)
	}
	rep := reps[0]
	if rep.Accepted != 2 || rep.Refused != 2 || rep.Consumed != 2 {
		t.Errorf("accepted %d, refused %d, consumed %d; want 2, 2, 2", rep.Accepted, rep.Refused, rep.Consumed)
	}
	reasons := map[string]string{}
	for _, p := range rep.Paths {
		reasons[p.StorePath] = p.Reason
	}
	if r := reasons[hello]; !strings.Contains(r, "narinfo is larger than 1 MiB") {
		t.Errorf("oversized narinfo: reason %q", r)
	}
	if r := reasons[filepath.Base(fifo)]; !strings.Contains(r, "is a FIFO") {
		t.Errorf("FIFO: reason %q", r)
	}
	for _, name := range []string{hello, filepath.Base(fifo)} {
		if _, err := os.Lstat(filepath.Join(incoming, name)); err != nil {
			t.Errorf("refused %s was consumed: %v", name, err)
		}
	}
}
