package nar_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	gonar "github.com/nix-community/go-nix/pkg/nar"

	"github.com/nixrepo/nixrepo/internal/nar"
)

func TestCheckAcceptsValidNars(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 40000) + "xyz" // 640003 bytes: spans buffers
	tests := []struct {
		name    string
		nar     []byte
		listing string
	}{
		{
			name:    "regular root",
			nar:     enc(narT(fileT("abc", false))...),
			listing: `{"version":1,"root":{"type":"regular","size":3,"narOffset":96}}`,
		},
		{
			name:    "executable empty root",
			nar:     enc(narT(fileT("", true))...),
			listing: `{"version":1,"root":{"type":"regular","size":0,"executable":true,"narOffset":128}}`,
		},
		{
			name:    "symlink root",
			nar:     enc(narT(linkT("target-x"))...),
			listing: `{"version":1,"root":{"type":"symlink","target":"target-x"}}`,
		},
		{
			name:    "empty directory",
			nar:     enc(narT(dirT())...),
			listing: `{"version":1,"root":{"type":"directory","entries":{}}}`,
		},
		{
			name: "big file",
			nar:  enc(narT(dirT(entryT("a", fileT(big, false)), entryT("b", fileT("x", true))))...),
			listing: `{"version":1,"root":{"type":"directory","entries":{` +
				`"a":{"type":"regular","size":640003,"narOffset":232},` +
				`"b":{"type":"regular","size":1,"executable":true,"narOffset":640456}}}}`,
		},
		{
			name: "escaping",
			nar: enc(narT(dirT(
				entryT("\x01\x1f", fileT("", false)),
				entryT("\b\t\n\f\r", fileT("", false)),
				entryT(` "\`, linkT("\"\\\x01\xff")),
				entryT("\x7f\xc3\xbc\xff", dirT()),
			))...),
			listing: `{"version":1,"root":{"type":"directory","entries":{` +
				`"\u0001\u001f":{"type":"regular","size":0,"narOffset":232},` +
				`"\u0008\t\n\u000c\r":{"type":"regular","size":0,"narOffset":416},` +
				`" \"\\":{"type":"symlink","target":"\"\\\u0001` + "\xff" + `"},` +
				"\"\x7f\xc3\xbc\xff\"" + `:{"type":"directory","entries":{}}}}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{1, 7, 4096, 1 << 30} {
				res, err := nar.Check(&slowReader{bytes.NewReader(tc.nar), chunk}, nar.Options{Listing: true})
				if err != nil {
					t.Fatalf("chunk %d: %v", chunk, err)
				}
				if res.Size != uint64(len(tc.nar)) {
					t.Errorf("chunk %d: Size = %d, want %d", chunk, res.Size, len(tc.nar))
				}
				if res.SHA256 != sha256.Sum256(tc.nar) {
					t.Errorf("chunk %d: wrong SHA256", chunk)
				}
				if string(res.Listing) != tc.listing {
					t.Errorf("chunk %d: listing\n got %s\nwant %s", chunk, res.Listing, tc.listing)
				}
			}
			res, err := nar.Check(bytes.NewReader(tc.nar), nar.Options{})
			if err != nil || res.Listing != nil {
				t.Errorf("without listing: err %v, listing %q", err, res.Listing)
			}
			if out, ok := rebuild(t, []byte(tc.listing), tc.nar); ok && !bytes.Equal(out, tc.nar) {
				t.Errorf("go-nix re-serialisation of the listing differs from the NAR")
			}
		})
	}
}

// TestCheckGoNixDump checks real trees dumped by go-nix (byte-identical to
// nix-store --dump) against go-nix's writer via the listing.
func TestCheckGoNixDump(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b/c"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a/b/c/f"), bytes.Repeat([]byte("nix"), 100000), 0o644))
	must(os.WriteFile(filepath.Join(dir, "x"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Symlink("a/b", filepath.Join(dir, "l")))
	var buf bytes.Buffer
	must(gonar.DumpPath(&buf, dir))
	res, err := nar.Check(bytes.NewReader(buf.Bytes()), nar.Options{Listing: true})
	must(err)
	if res.Size != uint64(buf.Len()) || res.SHA256 != sha256.Sum256(buf.Bytes()) {
		t.Fatalf("size/hash mismatch")
	}
	out, ok := rebuild(t, res.Listing, buf.Bytes())
	if !ok || !bytes.Equal(out, buf.Bytes()) {
		t.Fatalf("rebuild from listing differs (ok=%v)", ok)
	}
}

func TestCheckRefusesInvalidNarsAtOffset(t *testing.T) {
	file := fileT("abc", false)
	setByte := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	tests := []struct {
		name   string
		nar    []byte
		msg    string // the complete error message
		is     error
		offset uint64
	}{
		{
			name: "bad magic",
			nar:  enc(narT(file)...)[8:],
			msg:  "nar: offset 0: not a NAR (bad magic)",
			is:   nar.ErrInvalid,
		},
		{
			name: "wrong version",
			nar:  enc(cat([]string{"nix-archive-2"}, file)...),
			msg:  "nar: offset 0: not a NAR (bad magic)",
			is:   nar.ErrInvalid,
		},
		{
			name: "empty input",
			nar:  nil,
			msg:  "nar: offset 0: truncated NAR (stream ended in the NAR header): unexpected EOF",
			is:   io.ErrUnexpectedEOF,
		},
		{
			name: "magic padding",
			nar:  setByte(enc(narT(file)...), 22, 1),
			msg:  "nar: offset 0: not a NAR (bad magic)",
			is:   nar.ErrInvalid,
		},
		{
			name:   "unsorted",
			nar:    enc(narT(dirT(entryT("bin", dirT(entryT("c", file), entryT("b", file)))))...),
			msg:    `nar: offset 456: /bin: entries not sorted ("b" after "c")`,
			is:     nar.ErrInvalid,
			offset: 456,
		},
		{
			name:   "duplicate",
			nar:    enc(narT(dirT(entryT("a", file), entryT("a", file)))...),
			msg:    `nar: offset 320: /: duplicate entry "a"`,
			is:     nar.ErrInvalid,
			offset: 320,
		},
		{
			name:   "unsorted bytewise",
			nar:    enc(narT(dirT(entryT("\xff", file), entryT("a", file)))...),
			msg:    `nar: offset 320: /: entries not sorted ("a" after "\xff")`,
			is:     nar.ErrInvalid,
			offset: 320,
		},
		{
			name:   "dot-dot",
			nar:    enc(narT(dirT(entryT("..", file)))...),
			msg:    `nar: offset 128: /: invalid entry name ".."`,
			is:     nar.ErrInvalid,
			offset: 128,
		},
		{
			name: "dot",
			nar:  enc(narT(dirT(entryT(".", file)))...),
			msg:  `nar: offset 128: /: invalid entry name "."`,
			is:   nar.ErrInvalid,
		},
		{
			name: "empty name",
			nar:  enc(narT(dirT(entryT("", file)))...),
			msg:  `nar: offset 128: /: invalid entry name ""`,
			is:   nar.ErrInvalid,
		},
		{
			name: "slash in name",
			nar:  enc(narT(dirT(entryT("a/b", file)))...),
			msg:  `nar: offset 128: /: invalid entry name "a/b"`,
			is:   nar.ErrInvalid,
		},
		{
			name: "NUL in name",
			nar:  enc(narT(dirT(entryT("a\x00", file)))...),
			msg:  `nar: offset 128: /: invalid entry name "a\x00"`,
			is:   nar.ErrInvalid,
		},
		{
			name: "name too long",
			nar:  enc(narT(dirT(entryT(strings.Repeat("n", nar.MaxNameLen+1), file)))...),
			msg:  `nar: offset 128: /: entry name is 4097 bytes long (limit 4096)`,
			is:   nar.ErrInvalid,
		},
		{
			name:   "empty symlink target",
			nar:    enc(narT(dirT(entryT("l", linkT(""))))...),
			msg:    `nar: offset 224: /l: empty symlink target`,
			is:     nar.ErrInvalid,
			offset: 224,
		},
		{
			name: "NUL in symlink target",
			nar:  enc(narT(linkT("a\x00b"))...),
			msg:  `nar: offset 88: /: symlink target "a\x00b" contains NUL`,
			is:   nar.ErrInvalid,
		},
		{
			name: "unknown node type",
			nar:  enc(narT([]string{"(", "type", "fifo", ")"})...),
			msg:  `nar: offset 56: /: unknown node type "fifo"`,
			is:   nar.ErrInvalid,
		},
		{
			name: "unknown token in directory",
			nar:  enc(narT([]string{"(", "type", "directory", "mtime", "0", ")"})...),
			msg:  `nar: offset 80: /: expected "entry" or ")", found "mtime"`,
			is:   nar.ErrInvalid,
		},
		{
			name: "unknown token in regular",
			nar:  enc(narT([]string{"(", "type", "regular", "size", "3", "contents", "abc", ")"})...),
			msg:  `nar: offset 72: /: expected "executable" or "contents", found "size"`,
			is:   nar.ErrInvalid,
		},
		{
			name: "unknown token in entry",
			nar:  enc(narT([]string{"(", "type", "directory", "entry", "(", "name", "a", "mode", "x", ")", ")"})...),
			msg:  `nar: offset 144: /a: expected "node", found "mode"`,
			is:   nar.ErrInvalid,
		},
		{
			name: "executable with value",
			nar:  enc(narT([]string{"(", "type", "regular", "executable", "1", "contents", "", ")"})...),
			msg:  `nar: offset 96: /: executable marker has non-empty value "1"`,
			is:   nar.ErrInvalid,
		},
		{
			name: "executable twice",
			nar:  enc(narT([]string{"(", "type", "regular", "executable", "", "executable", "", "contents", "", ")"})...),
			msg:  `nar: offset 104: /: expected "contents", found "executable"`,
			is:   nar.ErrInvalid,
		},
		{
			name: "two type fields",
			nar:  enc(narT([]string{"(", "type", "symlink", "type", "symlink", "target", "x", ")"})...),
			msg:  `nar: offset 72: /: expected "target", found "type"`,
			is:   nar.ErrInvalid,
		},
		{
			name: "contents twice",
			nar:  enc(narT([]string{"(", "type", "regular", "contents", "a", "contents", "b", ")"})...),
			msg:  `nar: offset 104: /: expected ")", found "contents"`,
			is:   nar.ErrInvalid,
		},
		{
			name: "missing open paren",
			nar:  enc(narT([]string{"type", "regular", "contents", "", ")"})...),
			msg:  `nar: offset 24: /: expected "(", found "type"`,
			is:   nar.ErrInvalid,
		},
		{
			name: "huge token",
			nar:  append(enc("nix-archive-1"), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
			msg:  `nar: offset 24: /: expected "(", found a 18446744073709551615-byte string`,
			is:   nar.ErrInvalid,
		},
		{
			name:   "string padding",
			nar:    setByte(enc(narT(dirT(entryT("a", file)))...), 140, 'x'),
			msg:    `nar: offset 140: /: non-zero padding after entry name`,
			is:     nar.ErrInvalid,
			offset: 140,
		},
		{
			name:   "contents padding",
			nar:    setByte(enc(narT(file)...), 99, 1),
			msg:    `nar: offset 99: /: non-zero padding after file contents`,
			is:     nar.ErrInvalid,
			offset: 99,
		},
		{
			name:   "trailing data",
			nar:    append(enc(narT(file)...), 0),
			msg:    `nar: offset 120: trailing data after NAR`,
			is:     nar.ErrInvalid,
			offset: 120,
		},
		{
			name: "second NAR appended",
			nar:  append(enc(narT(file)...), enc(narT(file)...)...),
			msg:  `nar: offset 120: trailing data after NAR`,
			is:   nar.ErrInvalid,
		},
		{
			name:   "truncated contents",
			nar:    enc(narT(file)...)[:98],
			msg:    `nar: offset 98: /: truncated NAR (stream ended in file contents): unexpected EOF`,
			is:     io.ErrUnexpectedEOF,
			offset: 98,
		},
		{
			name: "truncated nested",
			nar:  enc(narT(dirT(entryT("bin", dirT(entryT("sh", file)))))...)[:370],
			msg:  `nar: offset 370: /bin/sh: truncated NAR (stream ended in file contents): unexpected EOF`,
			is:   io.ErrUnexpectedEOF,
		},
		{
			name: "odd path quoted",
			nar:  enc(narT(dirT(entryT("a\nb", dirT(entryT("x", linkT(""))))))...),
			msg:  `nar: offset 360: "/a\nb/x": empty symlink target`,
			is:   nar.ErrInvalid,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := nar.Check(bytes.NewReader(tc.nar), nar.Options{Listing: true})
			if err == nil {
				t.Fatalf("accepted: %+v", res)
			}
			if err.Error() != tc.msg {
				t.Errorf("error\n got %s\nwant %s", err, tc.msg)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			var ne *nar.Error
			if !errors.As(err, &ne) {
				t.Fatalf("error %T is not a *nar.Error", err)
			}
			if tc.offset != 0 && ne.Offset != tc.offset {
				t.Errorf("Offset = %d, want %d", ne.Offset, tc.offset)
			}
			if res.Size != 0 || res.Listing != nil {
				t.Errorf("non-zero result with error: %+v", res)
			}
		})
	}
}

func TestCheckRefusesNestingPastMaxDepth(t *testing.T) {
	node := fileT("", false)
	for range nar.MaxDepth {
		node = dirT(entryT("d", node))
	}
	if _, err := nar.Check(bytes.NewReader(enc(narT(node)...)), nar.Options{Listing: true}); err != nil {
		t.Fatalf("MaxDepth levels rejected: %v", err)
	}
	node = dirT(entryT("d", node))
	_, err := nar.Check(bytes.NewReader(enc(narT(node)...)), nar.Options{})
	if !errors.Is(err, nar.ErrInvalid) || !strings.Contains(err.Error(), "nested deeper than 2048 levels") {
		t.Fatalf("MaxDepth+1 levels: %v", err)
	}
}

// TestCheckRefusesEveryTruncation cuts a valid NAR at every offset: each prefix must be
// rejected as truncated, at the offset where the data ends.
func TestCheckRefusesEveryTruncation(t *testing.T) {
	full := sampleNAR()
	if _, err := nar.Check(bytes.NewReader(full), nar.Options{}); err != nil {
		t.Fatal(err)
	}
	for n := range len(full) {
		_, err := nar.Check(bytes.NewReader(full[:n]), nar.Options{Listing: true})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("prefix of %d bytes: got %v, want unexpected EOF", n, err)
		}
		if ne := (*nar.Error)(nil); !errors.As(err, &ne) || ne.Offset != uint64(n) {
			t.Fatalf("prefix of %d bytes: wrong offset in %v", n, err)
		}
		// A byte appended anywhere past the end is trailing data.
	}
	_, err := nar.Check(io.MultiReader(bytes.NewReader(full), strings.NewReader("x")), nar.Options{})
	if !errors.Is(err, nar.ErrInvalid) || !strings.Contains(err.Error(), "trailing data") {
		t.Fatalf("trailing byte: %v", err)
	}
}

func TestCheckReturnsReaderErrors(t *testing.T) {
	full := sampleNAR()
	boom := errors.New("boom")
	tests := []struct {
		name string
		r    io.Reader
		is   error
	}{
		{"error mid-stream", io.MultiReader(bytes.NewReader(full[:100]), iotest.ErrReader(boom)), boom},
		{"error after the NAR", io.MultiReader(bytes.NewReader(full), iotest.ErrReader(boom)), boom},
		{"timeout reader", iotest.TimeoutReader(bytes.NewReader(full)), iotest.ErrTimeout},
		{"no progress", zeroReader{}, io.ErrNoProgress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := nar.Check(tc.r, nar.Options{})
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
		})
	}
	// Readers that return data together with io.EOF, or one byte at a time,
	// must work.
	for name, r := range map[string]io.Reader{
		"data+EOF": iotest.DataErrReader(bytes.NewReader(full)),
		"one byte": iotest.OneByteReader(bytes.NewReader(full)),
		"half":     iotest.HalfReader(bytes.NewReader(full)),
	} {
		if res, err := nar.Check(r, nar.Options{}); err != nil || res.Size != uint64(len(full)) {
			t.Errorf("%s: %v (size %d)", name, err, res.Size)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// genReader produces a NAR holding one regular file of the given size
// without materialising it.
type genReader struct {
	head, tail []byte
	left       uint64 // contents still to produce
	chunk      []byte
}

func newGenReader(size uint64) *genReader {
	h := enc(narT([]string{"(", "type", "regular", "contents"})...)
	h = append(h, byte(size), byte(size>>8), byte(size>>16), byte(size>>24), byte(size>>32), byte(size>>40), byte(size>>48), byte(size>>56))
	tail := make([]byte, (8-size%8)%8)
	tail = append(tail, enc(")")...)
	chunk := bytes.Repeat([]byte("abcdefgh"), 4096)
	return &genReader{head: h, tail: tail, left: size, chunk: chunk}
}

func (g *genReader) Read(p []byte) (int, error) {
	switch {
	case len(g.head) > 0:
		n := copy(p, g.head)
		g.head = g.head[n:]
		return n, nil
	case g.left > 0:
		if uint64(len(p)) > g.left {
			p = p[:g.left]
		}
		n := 0
		for n < len(p) {
			n += copy(p[n:], g.chunk)
		}
		g.left -= uint64(n)
		return n, nil
	case len(g.tail) > 0:
		n := copy(p, g.tail)
		g.tail = g.tail[n:]
		return n, nil
	}
	return 0, io.EOF
}

// TestCheckConstantMemory streams a 1 GiB file and checks that Check
// allocates (almost) nothing for it.
func TestCheckConstantMemory(t *testing.T) {
	size := uint64(1 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	// Warm the buffer pool so the measurement shows per-byte allocations only.
	if _, err := nar.Check(newGenReader(10), nar.Options{}); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g := newGenReader(size + 3)
	want := uint64(len(g.head)) + size + 3 + uint64(len(g.tail))
	res, err := nar.Check(g, nar.Options{Listing: true})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != want {
		t.Errorf("Size = %d, want %d", res.Size, want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("Check allocated %d bytes for a %d-byte file", alloc, size)
	}
}

func TestErrorMessageFormat(t *testing.T) {
	e := &nar.Error{Offset: 1234, Path: "/bin", Msg: `entries not sorted ("b" after "c")`, Err: nar.ErrInvalid}
	if got, want := e.Error(), `nar: offset 1234: /bin: entries not sorted ("b" after "c")`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
