package store_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/internal/store"
)

// sourceFixture is a source folder beside an outside folder its links point
// to. The outside folder stands for anything the source's writer must not
// reach (the repository store, /etc, …).
type sourceFixture struct {
	src, outside string
}

func newSourceFixture(t *testing.T) *sourceFixture {
	t.Helper()
	base := t.TempDir()
	f := &sourceFixture{src: filepath.Join(base, "incoming"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{f.src, filepath.Join(f.src, "nar"), filepath.Join(f.outside, "nar")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.write(t, filepath.Join(f.outside, "secret.narinfo"), "outside")
	f.write(t, filepath.Join(f.outside, "nar", "x.nar"), "outside nar")
	f.write(t, filepath.Join(f.src, "inside.narinfo"), "inside")
	return f
}

func (f *sourceFixture) write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *sourceFixture) open(t *testing.T) *store.Store {
	t.Helper()
	// A plain path: a test's temporary folder may hold a '#', which a
	// file:// URL would take for a fragment.
	s, err := store.OpenSource(context.Background(), f.src, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// withDeadline fails the test when fn has not returned within d: every
// operation on a source must return promptly, whatever the folder holds.
func withDeadline(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v (blocked on a special file?)", what, d)
	}
}

// mkfifo makes a FIFO and, at cleanup, opens it for writing once, so a
// reader blocked on it (the bug under test) is released.
func mkfifo(t *testing.T, p string) {
	t.Helper()
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			syscall.Close(fd)
		}
	})
}

func TestSourceFolderRefusesLinksAndSpecialFiles(t *testing.T) {
	cases := []struct {
		name  string
		key   string
		setup func(t *testing.T, f *sourceFixture)
		entry string // the refused entry
		kind  string
	}{
		{"file symlink pointing outside", "x.narinfo", func(t *testing.T, f *sourceFixture) {
			must(t, os.Symlink(filepath.Join(f.outside, "secret.narinfo"), filepath.Join(f.src, "x.narinfo")))
		}, "x.narinfo", "symbolic link"},
		{"file symlink pointing inside the source", "x.narinfo", func(t *testing.T, f *sourceFixture) {
			must(t, os.Symlink("inside.narinfo", filepath.Join(f.src, "x.narinfo")))
		}, "x.narinfo", "symbolic link"},
		{"symlink to /dev/zero", "x.narinfo", func(t *testing.T, f *sourceFixture) {
			must(t, os.Symlink("/dev/zero", filepath.Join(f.src, "x.narinfo")))
		}, "x.narinfo", "symbolic link"},
		{"nar folder symlinked outside", "nar/x.nar", func(t *testing.T, f *sourceFixture) {
			must(t, os.RemoveAll(filepath.Join(f.src, "nar")))
			must(t, os.Symlink(filepath.Join(f.outside, "nar"), filepath.Join(f.src, "nar")))
		}, "nar", "symbolic link"},
		{"nar folder symlinked inside the source", "nar/x.nar", func(t *testing.T, f *sourceFixture) {
			must(t, os.RemoveAll(filepath.Join(f.src, "nar")))
			must(t, os.Mkdir(filepath.Join(f.src, "real"), 0o755))
			f.write(t, filepath.Join(f.src, "real", "x.nar"), "inside nar")
			must(t, os.Symlink("real", filepath.Join(f.src, "nar")))
		}, "nar", "symbolic link"},
		{"nar file symlinked", "nar/x.nar", func(t *testing.T, f *sourceFixture) {
			must(t, os.Symlink(filepath.Join(f.outside, "nar", "x.nar"), filepath.Join(f.src, "nar", "x.nar")))
		}, "nar/x.nar", "symbolic link"},
		{"FIFO", "x.narinfo", func(t *testing.T, f *sourceFixture) {
			mkfifo(t, filepath.Join(f.src, "x.narinfo"))
		}, "x.narinfo", "FIFO"},
		{"FIFO as NAR file", "nar/x.nar", func(t *testing.T, f *sourceFixture) {
			mkfifo(t, filepath.Join(f.src, "nar", "x.nar"))
		}, "nar/x.nar", "FIFO"},
		{"socket", "x.narinfo", func(t *testing.T, f *sourceFixture) {
			// A Unix socket path is limited to ~108 bytes: listen from
			// inside the folder.
			t.Chdir(f.src)
			l, err := net.Listen("unix", "x.narinfo")
			must(t, err)
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { l.Close() })
		}, "x.narinfo", "socket"},
		{"character device", "x.narinfo", func(t *testing.T, f *sourceFixture) {
			// /dev/zero's numbers (1, 5); only a privileged user may do this.
			if err := syscall.Mknod(filepath.Join(f.src, "x.narinfo"), syscall.S_IFCHR|0o644, 1<<8|5); err != nil {
				t.Skipf("cannot make a device node here: %v", err)
			}
		}, "x.narinfo", "device"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newSourceFixture(t)
			tc.setup(t, f)
			s := f.open(t)
			ctx := context.Background()
			check := func(op string, err error) {
				t.Helper()
				var ee *store.EntryError
				if !errors.Is(err, store.ErrNotRegular) || !errors.As(err, &ee) {
					t.Fatalf("%s %s: got %v, want a refusal wrapping ErrNotRegular", op, tc.key, err)
				}
				if ee.Entry != tc.entry || ee.Kind != tc.kind {
					t.Errorf("%s %s: refused %q as %q, want %q as %q", op, tc.key, ee.Entry, ee.Kind, tc.entry, tc.kind)
				}
				if !strings.Contains(err.Error(), tc.entry+" is a "+tc.kind) {
					t.Errorf("%s %s: message %q does not say what was refused", op, tc.key, err)
				}
			}
			withDeadline(t, 10*time.Second, "reading "+tc.key, func() {
				_, err := s.Get(ctx, tc.key)
				check("Get", err)
				_, err = s.GetLimit(ctx, tc.key, 1<<20)
				check("GetLimit", err)
				_, err = s.NewReader(ctx, tc.key)
				check("NewReader", err)
				_, err = s.NewRangeReader(ctx, tc.key, 1, 2)
				check("NewRangeReader", err)
				_, err = s.Stat(ctx, tc.key)
				check("Stat", err)
				_, err = s.Exists(ctx, tc.key)
				check("Exists", err)
				check("Delete", s.Delete(ctx, tc.key))
			})
			// Nothing was deleted: neither the entry nor what it points to.
			entry := filepath.Join(f.src, filepath.FromSlash(tc.entry))
			if _, err := os.Lstat(entry); err != nil {
				t.Errorf("the refused entry is gone: %v", err)
			}
			for p, want := range map[string]string{
				filepath.Join(f.outside, "secret.narinfo"): "outside",
				filepath.Join(f.outside, "nar", "x.nar"):   "outside nar",
				filepath.Join(f.src, "inside.narinfo"):     "inside",
			} {
				if got, err := os.ReadFile(p); err != nil || string(got) != want {
					t.Errorf("%s: %q, %v; want it untouched", p, got, err)
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSourceFolderReadsAndDeletesRegularFiles(t *testing.T) {
	f := newSourceFixture(t)
	f.write(t, filepath.Join(f.src, "nar", "y.nar"), "0123456789")
	s := f.open(t)
	ctx := context.Background()
	if b, err := s.Get(ctx, "nar/y.nar"); err != nil || string(b) != "0123456789" {
		t.Fatalf("Get: %q, %v", b, err)
	}
	a, err := s.Stat(ctx, "nar/y.nar")
	if err != nil || a.Size != 10 {
		t.Fatalf("Stat: %+v, %v", a, err)
	}
	r, err := s.NewRangeReader(ctx, "nar/y.nar", 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(b) != "3456" {
		t.Fatalf("range: %q, %v", b, err)
	}
	for _, key := range []string{"missing.narinfo", "nar/missing.nar", "nope/x.nar", "nar", "inside.narinfo/x"} {
		if _, err := s.Get(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get %s: %v, want ErrNotFound", key, err)
		}
		if ok, err := s.Exists(ctx, key); ok || err != nil {
			t.Errorf("Exists %s: %v, %v; want false, nil", key, ok, err)
		}
	}
	for _, key := range []string{"../outside/secret.narinfo", "/etc/passwd", "nar//y.nar", "./inside.narinfo"} {
		if _, err := s.Get(ctx, key); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get %s: %v, want an invalid-key error", key, err)
		}
	}
	must(t, s.Delete(ctx, "nar/y.nar"))
	if _, err := os.Lstat(filepath.Join(f.src, "nar", "y.nar")); !os.IsNotExist(err) {
		t.Errorf("Delete left the file: %v", err)
	}
	if err := s.Delete(ctx, "nar/y.nar"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if err := s.Put(ctx, "new.narinfo", []byte("x"), nil); err == nil {
		t.Error("Put into a source succeeded")
	}
	if err := s.Copy(ctx, "copy.narinfo", "inside.narinfo"); err == nil {
		t.Error("Copy inside a source succeeded")
	}
	if _, err := os.Lstat(filepath.Join(f.src, "new.narinfo")); !os.IsNotExist(err) {
		t.Errorf("a write reached the source folder: %v", err)
	}
	if _, ok := s.LocalPath("inside.narinfo"); ok {
		t.Error("LocalPath of a source: a path-based fast path would follow links")
	}
}

func TestOpenSourceMissingFolder(t *testing.T) {
	_, err := store.OpenSource(context.Background(), "file://"+filepath.Join(t.TempDir(), "none"), "")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

// TestSourceFolderListsWithoutOpening: listing reports links and special
// files (so that reading them is refused with a reason) without opening
// them, and never descends into a linked folder. fileblob opens
// "<name>.attrs" beside every listed file, so a FIFO named that way would
// block its listing.
func TestSourceFolderListsWithoutOpening(t *testing.T) {
	f := newSourceFixture(t)
	mkfifo(t, filepath.Join(f.src, "inside.narinfo.attrs"))
	mkfifo(t, filepath.Join(f.src, "fifo.narinfo"))
	must(t, os.Symlink(filepath.Join(f.outside, "secret.narinfo"), filepath.Join(f.src, "link.narinfo")))
	must(t, os.Symlink(filepath.Join(f.outside, "nar"), filepath.Join(f.src, "linked")))
	f.write(t, filepath.Join(f.src, "nar", "y.nar"), "y")
	f.write(t, filepath.Join(f.src, "nar", "y.nar.1a2b.tmp"), "partial")
	s := f.open(t)
	list := func(prefix string, shallow bool) []string {
		var keys []string
		withDeadline(t, 10*time.Second, "listing", func() {
			err := s.List(context.Background(), prefix, shallow, func(o store.Object) error {
				k := o.Key
				if o.Dir {
					k += " (dir)"
				}
				keys = append(keys, k)
				return nil
			})
			must(t, err)
		})
		sort.Strings(keys)
		return keys
	}
	got := strings.Join(list("", true), ",")
	want := "fifo.narinfo,inside.narinfo,inside.narinfo.attrs,link.narinfo,linked,nar/ (dir)"
	if got != want {
		t.Errorf("shallow listing:\n got %s\nwant %s", got, want)
	}
	got = strings.Join(list("", false), ",")
	want = "fifo.narinfo,inside.narinfo,inside.narinfo.attrs,link.narinfo,linked,nar/y.nar"
	if got != want {
		t.Errorf("deep listing:\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(list("nar/", false), ","); got != "nar/y.nar" {
		t.Errorf("listing nar/: %s", got)
	}
	if got := list("linked/", false); len(got) != 0 {
		t.Errorf("listing under a linked folder: %v, want nothing", got)
	}
	var narinfos []string
	must(t, s.Root().NarInfos(context.Background(), func(h string) error { narinfos = append(narinfos, h); return nil }))
	if len(narinfos) != 0 {
		t.Errorf("NarInfos: %v (no name here is a hash)", narinfos)
	}
}
