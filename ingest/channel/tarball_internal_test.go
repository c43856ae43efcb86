package channel

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/ingest"
)

// readCounter counts what the unpacker consumed.
type readCounter struct {
	r io.Reader
	n int64
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// manyFiles is a tar stream of top/ and n files of size bytes each.
func manyFiles(t testing.TB, n, size int) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "top/", Typeflag: tar.TypeDir, Mode: 0o755})
	body := bytes.Repeat([]byte{'x'}, size)
	for i := range n {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("top/f%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// unpackIn unpacks data into a folder inside a fresh parent and checks that
// the parent holds nothing but that folder afterwards, whatever happened.
func unpackIn(t testing.TB, r io.Reader, lim TarballLimits) (string, string, error) {
	t.Helper()
	parent := t.TempDir()
	dir := filepath.Join(parent, "unpack")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	top, err := unpackTar(r, dir, lim)
	ents, rerr := os.ReadDir(parent)
	if rerr != nil || len(ents) != 1 || ents[0].Name() != "unpack" || !ents[0].IsDir() {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("the unpack wrote outside its folder: the parent holds %v (%v)", names, rerr)
	}
	return dir, top, err
}

// TestUnpackStopsAtUnpackedCap: the unpacker reads at most one byte past
// the unpacked-size limit, whatever the stream holds after it.
func TestUnpackStopsAtUnpackedCap(t *testing.T) {
	const limit = 1 << 20
	for _, size := range []int{1000, 64 << 10, limit + 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			cr := &readCounter{r: bytes.NewReader(manyFiles(t, (16<<20)/size, size))}
			_, _, err := unpackIn(t, cr, TarballLimits{MaxUnpackedSize: limit})
			if !errors.Is(err, ingest.ErrTooLarge) || !strings.Contains(err.Error(), "max_tarball_unpacked_size") {
				t.Fatalf("err = %v; want the unpacked-size limit", err)
			}
			if cr.n > limit+1 {
				t.Fatalf("read %d bytes of the stream with a limit of %d", cr.n, limit)
			}
		})
	}
}

// TestUnpackStopsAtEntryCap: the unpacker stops at the first entry past
// the limit and has created no more than the limit.
func TestUnpackStopsAtEntryCap(t *testing.T) {
	const limit = 100
	data := manyFiles(t, 10*limit, 10)
	cr := &readCounter{r: bytes.NewReader(data)}
	dir, _, err := unpackIn(t, cr, TarballLimits{MaxEntries: limit})
	if !errors.Is(err, ingest.ErrTooLarge) || !strings.Contains(err.Error(), "more than 100 entries (max_tarball_entries)") {
		t.Fatalf("err = %v; want the entry limit", err)
	}
	// Each entry is a 512-byte header and a 512-byte block of data.
	if cr.n > int64(limit+2)*1024+32<<10 {
		t.Fatalf("read %d of %d bytes for a limit of %d entries", cr.n, len(data), limit)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "top"))
	if len(ents) >= limit {
		t.Fatalf("created %d files for a limit of %d entries (top/ is one of them)", len(ents), limit)
	}
}

// TestUnpackBoundsTrailingData: data after the end of the archive is read
// within the same limit (a small archive followed by a gigabyte of zeros).
func TestUnpackBoundsTrailingData(t *testing.T) {
	data := manyFiles(t, 1, 10)
	cr := &readCounter{r: io.MultiReader(bytes.NewReader(data), io.LimitReader(zeros{}, 1<<30))}
	_, _, err := unpackIn(t, cr, TarballLimits{MaxUnpackedSize: 1 << 20})
	if !errors.Is(err, ingest.ErrTooLarge) || cr.n > 1<<20+1 {
		t.Fatalf("err = %v after reading %d bytes; want the unpacked-size limit within 1 MiB", err, cr.n)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// tarSpec describes a fuzzed archive: entries separated by newlines, each
// "TYPE NAME [TARGET-OR-BODY]" with TYPE d (folder), f (file), x
// (executable), l (symlink), h (hard link), p (FIFO). "@PARENT@" in a link
// target stands for the unpack folder's parent, so a fuzzed absolute link
// can aim at the place the harness watches.
func buildTar(spec, parent string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for line := range strings.SplitSeq(spec, "\n") {
		typ, rest, _ := strings.Cut(line, " ")
		name, arg, _ := strings.Cut(rest, " ")
		arg = strings.ReplaceAll(arg, "@PARENT@", parent)
		h := &tar.Header{Name: name, Mode: 0o644, Format: tar.FormatPAX}
		switch typ {
		case "d":
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case "f", "x":
			h.Typeflag, h.Size = tar.TypeReg, int64(len(arg))
			if typ == "x" {
				h.Mode = 0o755
			}
		case "l":
			h.Typeflag, h.Linkname = tar.TypeSymlink, arg
		case "h":
			h.Typeflag, h.Linkname = tar.TypeLink, arg
		case "p":
			h.Typeflag = tar.TypeFifo
		default:
			continue
		}
		if tw.WriteHeader(h) != nil {
			continue
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(arg))
		}
	}
	tw.Close()
	return b.Bytes()
}

// FuzzUnpackTar: whatever the archive, nothing is created outside the
// unpack folder (its parent holds only the folder afterwards), and a
// successful unpack yields one top-level folder holding only files,
// folders and symlinks. The input is tried twice: as raw tar bytes, and
// as a tarSpec built into an archive.
func FuzzUnpackTar(f *testing.F) {
	specs := []string{
		// The symlink-then-file attack, by absolute and relative link.
		"d top/\nf top/default.nix {}\nl top/x @PARENT@/victim\nf top/x pwned",
		"d top/\nf top/default.nix {}\nl top/x ../../victim\nf top/x pwned",
		"f top/default.nix {}\nl top/x ..\nf top/x/victim pwned",
		"f top/default.nix {}\nl top/d @PARENT@\nd top/d/\nf top/d/victim pwned",
		"f top/default.nix {}\nl top/l .\nl top/l/l2 ../..\nf top/l/l2/victim pwned",
		"f top/default.nix {}\nh top/h @PARENT@/victim",
		"f top/default.nix {}\nf ../victim pwned",
		"f top/default.nix {}\nf top/../../victim pwned",
		"f /victim pwned",
		"d top/\nf top/default.nix {}\nd top/lib/\nx top/lib/tool.sh echo\nl top/nixpkgs .",
		"f top/default.nix {}\nf ./top/default.nix again",
		"f top/a b\nd top/a/",
		"p top/fifo",
	}
	for _, s := range specs {
		f.Add([]byte(s))
		f.Add(buildTar(s, "/tmp/fuzz-parent"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := TarballLimits{MaxEntries: 64, MaxUnpackedSize: 1 << 20}
		check := func(mk func(parent string) []byte) {
			parent := t.TempDir()
			victim := filepath.Join(parent, "victim")
			dir := filepath.Join(parent, "unpack")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			top, err := unpackTar(bytes.NewReader(mk(parent)), dir, lim)
			ents, rerr := os.ReadDir(parent)
			if rerr != nil || len(ents) != 1 || ents[0].Name() != "unpack" {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Fatalf("wrote outside the unpack folder: the parent holds %v (%v); victim: %v", names, rerr, victim)
			}
			if err != nil {
				return
			}
			tops, _ := os.ReadDir(dir)
			if len(tops) != 1 || tops[0].Name() != top || !tops[0].IsDir() {
				t.Fatalf("unpacked to %v, want the one folder %q", tops, top)
			}
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err != nil {
					t.Fatal(err)
				}
				if m := d.Type(); m&^(os.ModeDir|os.ModeSymlink) != 0 {
					t.Fatalf("%s has mode %v", p, m)
				}
				return nil
			})
		}
		check(func(string) []byte { return data })
		check(func(parent string) []byte { return buildTar(string(data), parent) })
	})
}
