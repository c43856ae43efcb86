package ingest

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"

	"github.com/nixrepo/nixrepo/internal/compress"
	"github.com/nixrepo/nixrepo/internal/nar"
	"github.com/nixrepo/nixrepo/internal/nix"
)

// Measured is what reading a NAR file established.
type Measured struct {
	FileHash nix.Hash // sha256 of the file as stored (compressed)
	FileSize uint64
	NarHash  nix.Hash // sha256 of the decompressed NAR
	NarSize  uint64
	Listing  []byte // the .ls JSON Nix would write for this NAR
	// ListingSkipped: the listing would have exceeded Limits.MaxListing,
	// so none was built (Listing is nil).
	ListingSkipped bool
	// Compression is how the file was decoded: MeasureOptions.Compression,
	// except that a file measured as "none" whose bytes are gzip is "gzip"
	// (Nix names gzip NAR files plain ".nar").
	Compression string
}

// ErrTooLarge is returned by Measure when the file exceeds its limit, or
// the NAR it decodes to exceeds Limits.MaxNarSize or
// Limits.MaxDecoderMemory.
var ErrTooLarge = errors.New("file is larger than allowed")

// DefaultMaxNarSize bounds a NAR (decoded) whose size no narinfo claims
// yet (a NAR file uploaded before its narinfo) when Limits.MaxNarSize is
// zero.
const DefaultMaxNarSize = 64 << 30

// Limits bound what verifying one NAR file may cost. Zero fields take the
// defaults.
type Limits struct {
	// MaxNarSize bounds the decoded NAR when no narinfo claims its
	// NarSize (DefaultMaxNarSize). With a claim, decoding stops at the
	// first byte past the claimed NarSize instead.
	MaxNarSize int64
	// MaxDecoderMemory bounds the window the compressed stream may
	// declare (compress.Options.MaxMemory; default
	// compress.DefaultMaxMemory, 128 MiB).
	MaxDecoderMemory int64
	// MaxListing bounds the .ls listing (nar.Options.MaxListing; default
	// nar.DefaultMaxListing, 16 MiB). A NAR with a larger listing is
	// accepted without one.
	MaxListing int
}

func (l Limits) maxNarSize() int64 {
	if l.MaxNarSize > 0 {
		return l.MaxNarSize
	}
	return DefaultMaxNarSize
}

func (l Limits) maxListing() int {
	if l.MaxListing > 0 {
		return l.MaxListing
	}
	return nar.DefaultMaxListing
}

// MeasureOptions describe the NAR file Measure reads and bound the work.
type MeasureOptions struct {
	// Compression is the narinfo Compression method of the file.
	Compression string
	// MaxFileSize bounds the file size (0: no bound); past it Measure
	// fails with ErrTooLarge.
	MaxFileSize int64
	// SizeHint is the expected file size, used to pick the fastest
	// decoder (0: unknown).
	SizeHint int64
	// NarSize is the NarSize a narinfo claims for the file (0: none
	// known). Decoding stops at the first byte past it, with a
	// *LimitError.
	NarSize uint64
	// Copy, when not nil, receives every file byte, so a caller can
	// store the file while it is verified (and discard the copy on
	// error).
	Copy io.Writer
	Limits
}

// LimitError reports a NAR file that Measure stopped decoding at a limit:
// the NAR is longer than the NarSize its narinfo claims (Claimed set), or
// than Limits.MaxNarSize, or its stream declares a window above
// Limits.MaxDecoderMemory. The rest of the file is not read, so FileHash
// is not known. Past the two limits it wraps ErrTooLarge.
type LimitError struct {
	Msg     string
	Claimed bool
	Err     error // the compress error: compress.ErrTooLarge or compress.ErrMemoryLimit
}

func (e *LimitError) Error() string { return e.Msg }
func (e *LimitError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrTooLarge) true for the limits, not for a
// NAR longer than claimed (a mismatch).
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge && !e.Claimed }

const chunkSize = 256 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// Measure reads a NAR file compressed with o.Compression in one streaming
// pass: it hashes and counts the file bytes, decompresses them, checks the
// NAR grammar and hashes and counts the NAR bytes, and builds the NAR
// listing (unless it would exceed o.MaxListing).
//
// Memory use is bounded: fixed-size buffers, the decoder's window (at most
// o.MaxDecoderMemory) and the listing (at most o.MaxListing).
func Measure(r io.Reader, o MeasureOptions) (Measured, error) {
	fileHash := sha256.New()
	var fileSize int64
	limit := o.MaxFileSize

	pr, pw := io.Pipe()
	feedDone := make(chan error, 1)
	// abandon: the decoder stopped at a limit; stop reading the file.
	var abandon atomic.Bool
	go func() {
		bp := chunkPool.Get().(*[]byte)
		defer chunkPool.Put(bp)
		buf := *bp
		var err error
		draining := false // the decoder stopped: only finish the file hash
		for {
			var n int
			n, err = r.Read(buf)
			if n > 0 {
				fileSize += int64(n)
				if limit > 0 && fileSize > limit {
					err = fmt.Errorf("%w (more than %d bytes)", ErrTooLarge, limit)
					break
				}
				fileHash.Write(buf[:n])
				if !draining && o.Copy != nil {
					if _, werr := o.Copy.Write(buf[:n]); werr != nil {
						err = &copyError{werr}
						break
					}
				}
				if !draining {
					if _, werr := pw.Write(buf[:n]); werr != nil {
						if abandon.Load() {
							err = errStopped
							break
						}
						// The decoder failed or finished early. Read on
						// so the caller learns the file's real hash: a
						// FileHash mismatch explains a decode error.
						draining = true
					}
				}
			}
			if err != nil {
				break
			}
		}
		if err == io.EOF {
			err = nil
		}
		if err != nil {
			pw.CloseWithError(err)
		} else {
			pw.Close()
		}
		feedDone <- err
	}()

	res, compression, err := decodeAndCheck(pr, o)
	if err == nil {
		// The decoder saw the end of the compressed stream. Anything still
		// unread is trailing data after it.
		var one [1]byte
		if n, _ := pr.Read(one[:]); n > 0 {
			err = fmt.Errorf("trailing data after the %s stream", o.Compression)
		}
	}
	limitErr := limitError(err, o)
	if limitErr != nil {
		abandon.Store(true)
	}
	// Stop feeding the decoder (the feeder drains the rest of the file,
	// unless a limit was hit).
	pr.CloseWithError(errStopped)
	feedErr := <-feedDone
	if feedErr != nil && (limitErr == nil || feedErr != errStopped) {
		// A read, size or storage error of the file explains any decoder
		// error.
		return Measured{}, feedErr
	}
	if limitErr != nil {
		return Measured{}, limitErr
	}
	m := Measured{FileHash: nix.SHA256(fileHash.Sum(nil)), FileSize: uint64(fileSize), Compression: compression}
	if err != nil {
		return m, &NarError{Err: err}
	}
	m.NarHash = nix.SHA256(res.SHA256[:])
	m.NarSize = res.Size
	m.Listing = res.Listing
	m.ListingSkipped = res.ListingSkipped
	return m, nil
}

// limitError turns a decoder stop at one of the limits into a
// *LimitError, and returns nil for any other error.
func limitError(err error, o MeasureOptions) error {
	var tl *compress.TooLargeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tl) && o.NarSize > 0:
		return &LimitError{Claimed: true, Err: tl, Msg: fmt.Sprintf(
			"NarSize mismatch: narinfo claims %d, the NAR is longer (decoding stopped after %d bytes)", o.NarSize, o.NarSize)}
	case errors.As(err, &tl):
		return &LimitError{Err: tl, Msg: fmt.Sprintf(
			"the NAR is larger than the limit of %d bytes (decoding stopped there)", tl.Limit)}
	case errors.Is(err, compress.ErrMemoryLimit):
		// Report compress's own message, without the NAR reader's
		// wrapping ("nar: offset 0: read error in the NAR header: …").
		inner := err
		for u := errors.Unwrap(inner); u != nil && errors.Is(u, compress.ErrMemoryLimit); u = errors.Unwrap(inner) {
			inner = u
		}
		return &LimitError{Err: inner, Msg: inner.Error()}
	}
	return nil
}

// NarError reports a file that does not decompress to a well-formed NAR.
// Measure returns it together with the file's FileHash and FileSize, which
// were still measured.
type NarError struct{ Err error }

func (e *NarError) Error() string { return e.Err.Error() }
func (e *NarError) Unwrap() error { return e.Err }

var errStopped = errors.New("measurement stopped")

func decodeAndCheck(r io.Reader, o MeasureOptions) (nar.Result, string, error) {
	maxOut := o.maxNarSize()
	if o.NarSize > 0 {
		maxOut = int64(min(o.NarSize, math.MaxInt64))
	}
	compression := o.Compression
	if compression == "none" {
		// Nix names a gzip NAR file ".nar", like an uncompressed one; the
		// first bytes tell them apart (a NAR starts with the length of
		// "nix-archive-1", 0x0d, never with gzip's 0x1f 0x8b).
		br := bufio.NewReader(r)
		if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
			compression = "gzip"
		}
		r = br
	}
	dr, err := compress.NewReaderOptions(r, compression, compress.Options{
		SizeHint: o.SizeHint, MaxOutput: maxOut, MaxMemory: o.MaxDecoderMemory})
	if err != nil {
		return nar.Result{}, compression, err
	}
	res, err := nar.Check(dr, nar.Options{Listing: true, MaxListing: o.maxListing()})
	cerr := dr.Close()
	if err != nil {
		return nar.Result{}, compression, err
	}
	if cerr != nil {
		return nar.Result{}, compression, cerr
	}
	return res, compression, nil
}

// CheckClaims compares a narinfo's claims with what was measured. Every
// mismatch is named with both values.
func CheckClaims(ni *nix.NarInfo, m Measured) error {
	var errs []error
	if !ni.FileHash.IsZero() && !ni.FileHash.Equal(m.FileHash) {
		errs = append(errs, fmt.Errorf("FileHash mismatch: narinfo claims %s, file has %s", ni.FileHash, m.FileHash))
	}
	if ni.FileSize != 0 && ni.FileSize != m.FileSize {
		errs = append(errs, fmt.Errorf("FileSize mismatch: narinfo claims %d, file has %d bytes", ni.FileSize, m.FileSize))
	}
	if !ni.NarHash.Equal(m.NarHash) {
		errs = append(errs, fmt.Errorf("NarHash mismatch: narinfo claims %s, NAR has %s", ni.NarHash, m.NarHash))
	}
	if ni.NarSize != m.NarSize {
		errs = append(errs, fmt.Errorf("NarSize mismatch: narinfo claims %d, NAR has %d bytes", ni.NarSize, m.NarSize))
	}
	if m.Compression != "" && m.Compression != ni.EffectiveCompression() {
		errs = append(errs, fmt.Errorf("Compression mismatch: narinfo claims %s, the file is %s", ni.EffectiveCompression(), m.Compression))
	}
	return errors.Join(errs...)
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

// countingReader adds every byte read to n: what a run or a verification
// reports as read.
type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
