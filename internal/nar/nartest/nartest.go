// Package nartest builds NAR streams for tests: valid ones (a single file,
// a directory of many symlinks generated as it is read) and, from their
// tokens, deliberately broken ones. It is test support: only tests and
// benchmarks import it, and it imports no project package.
package nartest

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// Strings serialises tokens as NAR strings: each one's length (64-bit
// little-endian), its bytes, and zeros up to a multiple of 8.
func Strings(tokens ...string) []byte {
	var b []byte
	for _, t := range tokens {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(t)))
		b = append(b, t...)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

// File is the NAR of a single regular file holding contents.
func File(contents []byte) []byte {
	return Strings("nix-archive-1", "(", "type", "regular", "contents", string(contents), ")")
}

// Symlinks returns a reader that generates, as it is read, the NAR of a
// directory holding n symlinks named l00001… with targets of targetLen
// bytes: a small compressed upload whose listing is about n*targetLen
// bytes.
func Symlinks(n, targetLen int) io.Reader { return &symlinks{n: n, targetLen: targetLen} }

type symlinks struct {
	n, targetLen, i int
	entry, pending  []byte // entry: one entry, named l00000; the name is patched
	done            bool
}

func (s *symlinks) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		switch {
		case s.done:
			return 0, io.EOF
		case s.i == 0:
			s.pending = Strings("nix-archive-1", "(", "type", "directory")
			s.entry = Strings("entry", "(", "name", "l00000", "node", "(", "type", "symlink", "target", strings.Repeat("t", s.targetLen), ")", ")")
			s.i = 1
		case s.i <= s.n:
			// The name is the fourth string: after "entry", "(", "name"
			// (16 bytes each) and its length.
			copy(s.entry[3*16+8:], fmt.Sprintf("l%05d", s.i))
			s.pending = s.entry
			s.i++
		default:
			s.pending = Strings(")")
			s.done = true
		}
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}
