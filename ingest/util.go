package ingest

import (
	"errors"
	"io"
	"sync/atomic"
)

type ioWriter = io.Writer

// countingReader adds every byte read to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// copyError marks a failure to store the copy Measure was asked to make: a
// problem of the repository, not of the path being measured.
type copyError struct{ err error }

func (e *copyError) Error() string { return "storing NAR file: " + e.err.Error() }
func (e *copyError) Unwrap() error { return e.err }

func isStoreWriteError(err error) bool {
	var ce *copyError
	return errors.As(err, &ce)
}
