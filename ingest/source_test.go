package ingest_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// writeFolder writes files (relative name → bytes) into dir.
func writeFolder(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for rel, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// openSource opens an incoming folder the way nixrepo does.
func openSource(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.OpenSource(context.Background(), "file://"+dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fileStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), "file://"+dir, "", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runWithin runs an ingest and fails the test when it does not finish in
// time (a FIFO opened for reading blocks until a writer comes).
func runWithin(t *testing.T, d time.Duration, dst, src *store.Store, consume bool) *ingest.Report {
	t.Helper()
	var rep *ingest.Report
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		rep, err = ingest.Run(context.Background(), dst.Repo("r"), src.Root(), &ingest.Options{Key: testKey, Workers: 2, Consume: consume})
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("ingest did not finish within %v", d)
	}
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// mkfifo makes a FIFO; at cleanup it is opened for writing once, which
// releases a reader blocked on it.
func mkfifo(t *testing.T, p string) {
	t.Helper()
	os.Remove(p)
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			syscall.Close(fd)
		}
	})
}

// TestIngestRefusesSourceEntriesThatAreNotRegularFiles: whoever writes an
// incoming folder is not trusted, so a link (wherever it points, even
// inside the source) or a special file in place of a narinfo or NAR file
// refuses that path with the reason; nothing is followed, opened, deleted
// or blocked on, and the rest of the batch goes on.
func TestIngestRefusesSourceEntriesThatAreNotRegularFiles(t *testing.T) {
	cases := []struct {
		name string
		// setup replaces entries of the source folder; outside is a folder
		// the source's writer must not reach, holding copies of the sample.
		setup   func(t *testing.T, files map[string][]byte, src, outside string)
		refused map[string]string // store path → part of the reason
	}{
		{"NAR file linked outside", func(t *testing.T, files map[string][]byte, src, outside string) {
			link(t, filepath.Join(outside, narinfoOf(t, files, helloHash).URL), filepath.Join(src, narinfoOf(t, files, helloHash).URL))
		}, map[string]string{helloPath: "is a symbolic link"}},
		{"NAR file linked inside the source", func(t *testing.T, files map[string][]byte, src, outside string) {
			url := narinfoOf(t, files, helloHash).URL
			if err := os.Rename(filepath.Join(src, url), filepath.Join(src, "hello.nar.xz")); err != nil {
				t.Fatal(err)
			}
			link(t, "../hello.nar.xz", filepath.Join(src, url))
		}, map[string]string{helloPath: "is a symbolic link"}},
		{"narinfo linked outside", func(t *testing.T, files map[string][]byte, src, outside string) {
			link(t, filepath.Join(outside, helloHash+".narinfo"), filepath.Join(src, helloHash+".narinfo"))
		}, map[string]string{helloHash + ".narinfo": "narinfo refused: " + helloHash + ".narinfo is a symbolic link"}},
		{"narinfo linked to /dev/zero", func(t *testing.T, files map[string][]byte, src, outside string) {
			link(t, "/dev/zero", filepath.Join(src, helloHash+".narinfo"))
		}, map[string]string{helloHash + ".narinfo": "is a symbolic link"}},
		{"nar folder linked outside", func(t *testing.T, files map[string][]byte, src, outside string) {
			if err := os.RemoveAll(filepath.Join(src, "nar")); err != nil {
				t.Fatal(err)
			}
			link(t, filepath.Join(outside, "nar"), filepath.Join(src, "nar"))
		}, map[string]string{
			dataPath:  "nar is a symbolic link",
			libPath:   "nar is a symbolic link",
			helloPath: "nar is a symbolic link",
		}},
		{"FIFO as narinfo", func(t *testing.T, files map[string][]byte, src, outside string) {
			mkfifo(t, filepath.Join(src, helloHash+".narinfo"))
		}, map[string]string{helloHash + ".narinfo": "is a FIFO"}},
		{"FIFO as NAR file of a narinfo without FileSize", func(t *testing.T, files map[string][]byte, src, outside string) {
			// Without a FileSize claim nothing catches the FIFO's size (0)
			// before it is opened.
			ni := narinfoOf(t, files, helloHash)
			writeFolder(t, src, map[string][]byte{helloHash + ".narinfo": dropLine(files[helloHash+".narinfo"], "FileSize: ")})
			mkfifo(t, filepath.Join(src, ni.URL))
		}, map[string]string{helloPath: "is a FIFO"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := sample(t)
			base := t.TempDir()
			src, outside := filepath.Join(base, "incoming"), filepath.Join(base, "outside")
			writeFolder(t, src, files)
			writeFolder(t, outside, files)
			// Opened before the setup, so that the store is closed after
			// the setup's FIFOs are released (cleanups run last-in
			// first-out): a read blocked on one would hold the store open.
			source := openSource(t, src)
			tc.setup(t, files, src, outside)
			dst := memStore(t)
			rep := runWithin(t, 20*time.Second, dst, source, true)
			got := outcomes(rep)
			// A path whose narinfo is refused is reported by its narinfo name.
			for _, p := range []struct{ path, narinfo string }{{dataPath, dataHash}, {libPath, libHash}, {helloPath, helloHash}} {
				name := p.path
				if _, ok := tc.refused[p.narinfo+".narinfo"]; ok {
					name = p.narinfo + ".narinfo"
				}
				r := got[name]
				if want, ok := tc.refused[name]; ok {
					if r.Outcome != ingest.Refused || !strings.Contains(r.Reason, want) {
						t.Errorf("%s: %s (%s), want refused: %s", name, r.Outcome, r.Reason, want)
					}
				} else if r.Outcome != ingest.Accepted {
					t.Errorf("%s: %s (%s), want accepted", name, r.Outcome, r.Reason)
				}
			}
			if len(rep.Paths) != 3 {
				t.Errorf("report has %d paths, want 3: %+v", len(rep.Paths), rep.Paths)
			}
			if t.Failed() {
				return
			}
			assertClean(t, dst)
			// The outside copies are untouched, and the refused entries are
			// still in the source.
			for rel, b := range files {
				if got, err := os.ReadFile(filepath.Join(outside, filepath.FromSlash(rel))); err != nil || !bytes.Equal(got, b) {
					t.Errorf("outside %s changed: %v", rel, err)
				}
			}
			if _, err := os.Lstat(filepath.Join(src, helloHash+".narinfo")); err != nil {
				t.Errorf("a refused path's narinfo was consumed: %v", err)
			}
		})
	}
}

func link(t *testing.T, target, name string) {
	t.Helper()
	os.Remove(name)
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

// TestConsumeNeverDeletesThroughALinkedNarFolder: an incoming folder holds
// copies of narinfos the repository already has and a "nar" link to the
// repository's own nar/ folder. Consuming must not delete the repository's
// NAR files through it: the paths are refused and nothing is deleted.
func TestConsumeNeverDeletesThroughALinkedNarFolder(t *testing.T) {
	files := sample(t)
	base := t.TempDir()
	repoDir := filepath.Join(base, "store")
	dst := fileStore(t, repoDir)
	if rep := run(t, dst, load(t, files), false); rep.Accepted != 3 {
		t.Fatalf("first ingest: %+v", rep)
	}
	repoFiles := map[string][]byte{}
	for _, k := range keys(t, dst, "r/") {
		b, err := os.ReadFile(filepath.Join(repoDir, "r", filepath.FromSlash(k)))
		if err != nil {
			t.Fatal(err)
		}
		repoFiles[k] = b
	}
	src := filepath.Join(base, "incoming")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{dataHash, libHash, helloHash} {
		writeFolder(t, src, map[string][]byte{h + ".narinfo": files[h+".narinfo"]})
	}
	link(t, filepath.Join(repoDir, "r", "nar"), filepath.Join(src, "nar"))

	rep := runWithin(t, 20*time.Second, dst, openSource(t, src), true)
	if rep.Refused != 3 || rep.Consumed != 0 {
		t.Errorf("refused %d, consumed %d; want 3 refused, nothing consumed", rep.Refused, rep.Consumed)
	}
	for _, p := range rep.Paths {
		if p.Outcome != ingest.Refused || !strings.Contains(p.Reason, "nar is a symbolic link") {
			t.Errorf("%s: %s (%s), want refused for the linked nar folder", p.StorePath, p.Outcome, p.Reason)
		}
	}
	for k, b := range repoFiles {
		got, err := os.ReadFile(filepath.Join(repoDir, "r", filepath.FromSlash(k)))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("repository file %s was changed or deleted: %v", k, err)
		}
	}
	for _, h := range []string{dataHash, libHash, helloHash} {
		if _, err := os.Stat(filepath.Join(src, h+".narinfo")); err != nil {
			t.Errorf("narinfo of a refused path consumed: %v", err)
		}
	}
}

// TestIngestRefusesOversizedNarInfo: a narinfo over nix.MaxNarInfoSize is
// refused with the limit in the reason (without reading it whole), and the
// rest of the batch is ingested. The padding is an unknown key, which Nix's
// parser ignores, so only the size limit can refuse it.
func TestIngestRefusesOversizedNarInfo(t *testing.T) {
	files := sample(t)
	pad := append([]byte("X-Padding: "), bytes.Repeat([]byte("a"), 2<<20)...)
	big := append(append(bytes.Clone(files[helloHash+".narinfo"]), pad...), '\n')
	if _, err := nix.ParseNarInfo(big); err != nil {
		t.Fatalf("the padded narinfo should parse: %v", err)
	}
	files[helloHash+".narinfo"] = big
	for name, src := range map[string]func() *store.Store{
		"bucket": func() *store.Store { return load(t, files) },
		"folder": func() *store.Store {
			dir := t.TempDir()
			writeFolder(t, dir, files)
			return openSource(t, dir)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dst := memStore(t)
			rep := run(t, dst, src(), true)
			got := outcomes(rep)
			want := "narinfo is larger than 1 MiB"
			if r := got[helloHash+".narinfo"]; r.Outcome != ingest.Refused || !strings.Contains(r.Reason, want) {
				t.Errorf("oversized narinfo: %s (%s), want refused: %s", r.Outcome, r.Reason, want)
			}
			if got[dataPath].Outcome != ingest.Accepted || got[libPath].Outcome != ingest.Accepted {
				t.Errorf("the rest of the batch: %+v", rep.Paths)
			}
			assertClean(t, dst)
		})
	}
}
