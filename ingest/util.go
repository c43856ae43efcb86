package ingest

import (
	"errors"
	"fmt"
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

// sizeText writes a byte count for messages: "1 MiB" when it is a whole
// number of KiB, MiB or GiB, else "N bytes".
func sizeText(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.unit)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
