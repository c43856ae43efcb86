package nar

import (
	"errors"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every error that reports a violation of the NAR
// format (as opposed to a truncated stream or a failing reader).
var ErrInvalid = errors.New("invalid NAR")

// Error describes why a NAR was rejected.
type Error struct {
	// Offset is the byte offset in the NAR stream at which the problem was
	// found: the start of the offending string, or the end of the data for a
	// truncated stream.
	Offset uint64
	// Path is the path inside the NAR ("/" for the top-level node, "/bin/sh"
	// …), or "" when the error does not concern a node (bad magic, trailing
	// data).
	Path string
	// Msg describes the problem.
	Msg string
	// Err is the cause: ErrInvalid, io.ErrUnexpectedEOF or the error
	// returned by the reader.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	b := make([]byte, 0, 64+len(e.Path)+len(e.Msg))
	b = append(b, "nar: offset "...)
	b = strconv.AppendUint(b, e.Offset, 10)
	b = append(b, ": "...)
	if e.Path != "" {
		b = append(b, quotePathIfNeeded(e.Path)...)
		b = append(b, ": "...)
	}
	b = append(b, e.Msg...)
	if e.Err != nil && e.Err != ErrInvalid {
		b = append(b, ": "...)
		b = append(b, e.Err.Error()...)
	}
	return string(b)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// quotePathIfNeeded returns p unchanged when it is printable UTF-8, and as
// a Go-quoted string otherwise, so that error messages stay on one line and
// show odd bytes.
func quotePathIfNeeded(p string) string {
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRuneInString(p[i:])
		if (r == utf8.RuneError && n == 1) || !unicode.IsPrint(r) || r == '"' {
			return strconv.Quote(p)
		}
		i += n
	}
	return p
}
