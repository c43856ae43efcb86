package ingest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

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
}

// ErrTooLarge is returned by Measure when the file exceeds its limit.
var ErrTooLarge = errors.New("file is larger than allowed")

const chunkSize = 256 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// Measure reads a NAR file compressed with the narinfo Compression method,
// in one streaming pass: it hashes and counts the file bytes, decompresses
// them, checks the NAR grammar and hashes and counts the NAR bytes, and builds
// the NAR listing. When copy is not nil every file byte is also written to it,
// so a caller can store the file while it is verified (and discard the copy
// on error). limit bounds the file size (0 = no bound); sizeHint is the
// expected file size, used to pick the fastest decoder (0 = unknown).
//
// Memory use is constant: nothing is held beyond fixed-size buffers.
func Measure(r io.Reader, compression string, limit, sizeHint int64, copy io.Writer) (Measured, error) {
	fileHash := sha256.New()
	var fileSize int64

	pr, pw := io.Pipe()
	feedDone := make(chan error, 1)
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
				if !draining && copy != nil {
					if _, werr := copy.Write(buf[:n]); werr != nil {
						err = &copyError{werr}
						break
					}
				}
				if !draining {
					if _, werr := pw.Write(buf[:n]); werr != nil {
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

	res, err := decodeAndCheck(pr, compression, sizeHint)
	if err == nil {
		// The decoder saw the end of the compressed stream. Anything still
		// unread is trailing data after it.
		var one [1]byte
		if n, _ := pr.Read(one[:]); n > 0 {
			err = fmt.Errorf("trailing data after the %s stream", compression)
		}
	}
	// Stop feeding the decoder (the feeder drains the rest of the file).
	pr.CloseWithError(errStopped)
	feedErr := <-feedDone
	if feedErr != nil {
		// A read, size or storage error of the file explains any decoder
		// error.
		return Measured{}, feedErr
	}
	m := Measured{FileHash: nix.SHA256(fileHash.Sum(nil)), FileSize: uint64(fileSize)}
	if err != nil {
		return m, &NarError{Err: err}
	}
	m.NarHash = nix.SHA256(res.SHA256[:])
	m.NarSize = res.Size
	m.Listing = res.Listing
	return m, nil
}

// NarError reports a file that does not decompress to a well-formed NAR.
// Measure returns it together with the file's FileHash and FileSize, which
// were still measured.
type NarError struct{ Err error }

func (e *NarError) Error() string { return e.Err.Error() }
func (e *NarError) Unwrap() error { return e.Err }

var errStopped = errors.New("measurement stopped")

func decodeAndCheck(r io.Reader, compression string, sizeHint int64) (nar.Result, error) {
	dr, err := compress.NewReaderSize(r, compression, sizeHint)
	if err != nil {
		return nar.Result{}, err
	}
	res, err := nar.Check(dr, nar.Options{Listing: true})
	cerr := dr.Close()
	if err != nil {
		return nar.Result{}, err
	}
	if cerr != nil {
		return nar.Result{}, cerr
	}
	return res, nil
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
	return errors.Join(errs...)
}
