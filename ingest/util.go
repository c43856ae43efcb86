package ingest

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

type ioWriter = io.Writer

// parallel runs fn(0..n-1) on up to workers goroutines and returns the first
// error; after an error or cancellation no new calls start.
func parallel(ctx context.Context, workers, n int, fn func(i int) error) error {
	if workers < 1 {
		workers = 1
	}
	if workers > n {
		workers = n
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		failed   atomic.Bool
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := ctx.Err()
				if err == nil {
					err = fn(i)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

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
