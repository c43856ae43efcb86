package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/compress"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// Bounds of the uploads other than NAR files, as sent and after decoding
// (never above MaxObjectSize). Listings and logs are streamed to the
// bucket; narinfos, nix-cache-info and realisations are read into memory.
const (
	maxSmallObject = 256 << 20 // listings and logs (a listing of a huge NAR can be tens of MiB)
	maxCacheInfo   = 64 << 10
	maxRealisation = 1 << 20
	// smallObjectMemory bounds the window of an encoded narinfo, listing,
	// log or realisation body: brotli's largest (16 MiB), xz up to -7,
	// zstd up to level 19. Nix compresses these with its default presets
	// (xz -6: 8 MiB, brotli: 4 MiB), and max_uploads of them at once must
	// stay cheap.
	smallObjectMemory = 16 << 20
)

// put handles an upload. It always answers 200 or a 4xx with a reason:
// Nix ≤ 2.32 retries a PUT that got 5xx/408/429 with an empty body and hangs.
func (s *Server) put(w http.ResponseWriter, r *http.Request, repo *repoState, k kind, rel string) {
	if repo.Key.Name == "" && (k == kindNarInfo) {
		httpError(w, http.StatusForbidden, "repository "+repo.Name+" has no signing key: uploads are disabled")
		return
	}
	body, release, ok := s.beginUpload(w, r, k, repo)
	if !ok {
		return
	}
	defer release()
	ctx := r.Context()
	var err error
	outcome := "accepted"
	switch k {
	case kindNar:
		if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
			err = fmt.Errorf("%w: a NAR file is stored as sent: Content-Encoding %q is not accepted", ingest.ErrInvalid, enc)
			break
		}
		_, err = ingest.PutNar(ctx, repo.cache, rel, body, ingest.UploadOptions{
			Size: r.ContentLength, MaxFileSize: s.opts.MaxObjectSize, Limits: s.narLimits()})
	case kindNarInfo:
		var data []byte
		if data, err = s.readBody(r, body, nix.MaxNarInfoSize); err != nil {
			break
		}
		hash, _ := store.NarInfoHash(rel)
		var res ingest.PutResult
		res, err = ingest.PutNarInfo(ctx, repo.cache, hash, data, repo.Key, s.narLimits())
		if err == nil {
			repo.narinfos.remove(hash)
			outcome = string(res.Outcome)
		}
	case kindCacheInfo:
		var data []byte
		if data, err = s.readBody(r, body, maxCacheInfo); err != nil {
			break
		}
		// The server owns nix-cache-info; accept what agrees with it.
		info, perr := nix.ParseCacheInfo(data)
		switch {
		case perr != nil:
			err = fmt.Errorf("%w: %v", ingest.ErrInvalid, perr)
		case info.StoreDir != "" && info.StoreDir != nix.StoreDir:
			err = fmt.Errorf("%w: this repository serves StoreDir %s, not %s", ingest.ErrInvalid, nix.StoreDir, info.StoreDir)
		default:
			outcome = "present"
		}
	case kindListing:
		err = s.streamBody(r, body, maxSmallObject, func(dec io.Reader) error {
			return ingest.PutListing(ctx, repo.cache, listingHash(rel), dec, s.narLimits())
		})
		if err == nil {
			outcome = "present"
		}
	case kindRealisation:
		var data []byte
		if data, err = s.readBody(r, body, maxRealisation); err != nil {
			break
		}
		if !json.Valid(data) {
			err = fmt.Errorf("%w: %s is not JSON", ingest.ErrInvalid, rel)
			break
		}
		err = ingest.PutOnce(ctx, repo.cache, rel, bytes.NewReader(data), "application/json")
	case kindLog:
		err = s.streamBody(r, body, maxSmallObject, func(dec io.Reader) error {
			return ingest.PutOnce(ctx, repo.cache, rel, dec, store.ContentTypeLog)
		})
	}
	s.metrics.received(k, body.n)
	if err != nil {
		s.uploadFailed(w, r, repo, k, body, err)
		return
	}
	s.metrics.upload(k, outcome)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

func listingHash(rel string) string { h, _ := store.ListingHash(rel); return h }

// narLimits bound verifying an uploaded or pulled NAR file.
func (s *Server) narLimits() ingest.Limits {
	return ingest.Limits{MaxNarSize: s.opts.MaxNarSize, MaxDecoderMemory: s.opts.MaxDecoderMemory, MaxListing: s.opts.MaxListingSize}
}

// uploadFailed answers an upload that failed with err: a 4xx with the
// reason (without the server's file paths, which only the log shows), or
// for an internal failure a 400 naming an error id. An upload the time
// limits cut off is refused for that, whatever error the cut caused.
func (s *Server) uploadFailed(w http.ResponseWriter, r *http.Request, repo *repoState, k kind, body *uploadBody, err error) {
	if cut := body.failure(); cut != nil {
		err = cut
	}
	status, msg := uploadStatus(err)
	if status == 0 {
		s.metrics.upload(k, "failed")
		s.internalError(w, r, err)
		return
	}
	s.metrics.upload(k, "refused")
	s.log.Info("upload refused", "repo", repo.Name, "path", r.URL.Path, "status", status, "reason", msg)
	httpError(w, status, s.redact.clean(msg))
}

// uploadStatus maps an upload error to a 4xx and its reason; 0 means an
// internal failure.
func uploadStatus(err error) (int, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ingest.ErrTooLarge), errors.As(err, &mbe),
		errors.Is(err, compress.ErrTooLarge), errors.Is(err, compress.ErrMemoryLimit):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, ingest.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, ingest.ErrMismatch):
		// Content that does not verify, also when it does not decode
		// (a NAR file or channel tarball that is not what it claims).
		return http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, compress.ErrCorrupt), errors.Is(err, compress.ErrUnsupported):
		// A request body whose Content-Encoding does not decode.
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, ingest.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, errStalled), errors.Is(err, errTooSlow), errors.Is(err, errNoUnpackSlot):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, context.Canceled):
		return http.StatusBadRequest, "upload interrupted"
	}
	return 0, ""
}

// openBody returns an upload body decoded by its Content-Encoding (Nix ≥
// 2.32 can compress narinfo, .ls and logs: br, zstd, xz, gzip) through the
// one decoder implementation, package compress: at most limit bytes (and
// MaxObjectSize) as sent and as decoded, and a window of at most
// smallObjectMemory. Past a bound, reads fail with an error wrapping
// compress.ErrTooLarge, compress.ErrMemoryLimit or ingest.ErrTooLarge;
// corrupt data wraps compress.ErrCorrupt; a failing body wraps
// ingest.ErrInvalid.
func (s *Server) openBody(r *http.Request, body io.Reader, limit int64) (io.ReadCloser, error) {
	limit = min(limit, s.opts.MaxObjectSize)
	sent := &sentBody{r: body, left: limit, limit: limit}
	dec, err := compress.NewContentReader(sent, r.Header.Get("Content-Encoding"), compress.Options{
		SizeHint: r.ContentLength, MaxOutput: limit, MaxMemory: smallObjectMemory})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ingest.ErrInvalid, err)
	}
	return dec, nil
}

// readBody reads a whole small upload body, decoded (see openBody).
func (s *Server) readBody(r *http.Request, body io.Reader, limit int64) ([]byte, error) {
	dec, err := s.openBody(r, body, limit)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	return io.ReadAll(dec)
}

// streamBody hands put the decoded upload body (see openBody).
func (s *Server) streamBody(r *http.Request, body io.Reader, limit int64, put func(io.Reader) error) error {
	dec, err := s.openBody(r, body, limit)
	if err != nil {
		return err
	}
	defer dec.Close()
	return put(dec)
}

// sentBody bounds the bytes of a body as sent (before decoding) and marks
// a failing body as a bad upload.
type sentBody struct {
	r           io.Reader
	left, limit int64
}

func (b *sentBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if int64(n) > b.left {
		return int(b.left), fmt.Errorf("%w: the body is larger than the limit of %d bytes", ingest.ErrTooLarge, b.limit)
	}
	b.left -= int64(n)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: reading the upload: %w", ingest.ErrInvalid, err)
	}
	return n, err
}
