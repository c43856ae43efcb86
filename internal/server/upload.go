package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// maxSmallObject bounds narinfo, listing, log and realisation uploads after
// decoding (a listing of a huge NAR can be tens of MiB).
const maxSmallObject = 256 << 20

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
		_, err = ingest.PutNar(ctx, repo.cache, rel, body, s.opts.MaxObjectSize)
	case kindNarInfo:
		var data []byte
		if data, err = readDecoded(r, body, nix.MaxNarInfoSize); err != nil {
			break
		}
		hash := strings.TrimSuffix(rel, ".narinfo")
		var res ingest.PutResult
		res, err = ingest.PutNarInfo(ctx, repo.cache, hash, data, repo.Key)
		if err == nil {
			repo.narinfos.remove(hash)
			outcome = string(res.Outcome)
		}
	case kindCacheInfo:
		var data []byte
		if data, err = readDecoded(r, body, 64<<10); err != nil {
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
		var data []byte
		if data, err = readDecoded(r, body, s.smallLimit()); err != nil {
			break
		}
		err = ingest.PutListing(ctx, repo.cache, strings.TrimSuffix(rel, ".ls"), data)
		if err == nil {
			outcome = "present"
		}
	case kindRealisation:
		var data []byte
		if data, err = readDecoded(r, body, s.smallLimit()); err != nil {
			break
		}
		if !json.Valid(data) {
			err = fmt.Errorf("%w: %s is not JSON", ingest.ErrInvalid, rel)
			break
		}
		err = putOnce(ctx, repo.cache, rel, data, "application/json")
	case kindLog:
		var data []byte
		if data, err = readDecoded(r, body, s.smallLimit()); err != nil {
			break
		}
		err = putOnce(ctx, repo.cache, rel, data, store.ContentTypeLog)
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

// putOnce writes a log or realisation once: the same bytes again are
// accepted, different bytes are a conflict (a realisation decides which
// store path a content-addressed output is; it must not be replaced).
func putOnce(ctx context.Context, repo *store.Cache, rel string, data []byte, contentType string) error {
	err := repo.Put(ctx, repo.Key(rel), data, &store.WriteOptions{ContentType: contentType, IfNotExist: true})
	if !errors.Is(err, store.ErrExists) {
		return err
	}
	old, gerr := repo.Get(ctx, repo.Key(rel))
	if gerr != nil {
		return gerr
	}
	if !bytes.Equal(old, data) {
		return fmt.Errorf("%w: %s exists with different contents (first upload wins)", ingest.ErrConflict, rel)
	}
	return nil
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

// smallLimit bounds listings, logs and realisations: the smaller of their
// own bound and the configured maximum object size (after decoding).
func (s *Server) smallLimit() int64 {
	return min(int64(maxSmallObject), s.opts.MaxObjectSize)
}

// uploadStatus maps an upload error to a 4xx and its reason; 0 means an
// internal failure.
func uploadStatus(err error) (int, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ingest.ErrTooLarge), errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, ingest.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, ingest.ErrMismatch):
		return http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, ingest.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, errStalled), errors.Is(err, errTooSlow):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, context.Canceled):
		return http.StatusBadRequest, "upload interrupted"
	}
	return 0, ""
}

// readDecoded reads a small upload body, undoing its Content-Encoding
// (Nix ≥ 2.32 can compress narinfo, .ls and logs: br, zstd, xz, gzip).
func readDecoded(r *http.Request, body io.Reader, limit int64) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the upload: %v", ingest.ErrInvalid, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%w (more than %d bytes)", ingest.ErrTooLarge, limit)
	}
	if r.ContentLength >= 0 && int64(len(raw)) != r.ContentLength {
		return nil, fmt.Errorf("%w: body is %d bytes, Content-Length said %d", ingest.ErrInvalid, len(raw), r.ContentLength)
	}
	var dec io.Reader
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return raw, nil
	case "br":
		dec = brotli.NewReader(bytes.NewReader(raw))
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip body: %v", ingest.ErrInvalid, err)
		}
		dec = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(raw), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd body: %v", ingest.ErrInvalid, err)
		}
		defer zr.Close()
		dec = zr
	case "xz":
		xr, err := xz.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: xz body: %v", ingest.ErrInvalid, err)
		}
		dec = xr
	default:
		return nil, fmt.Errorf("%w: unsupported Content-Encoding %q (supported: br, zstd, xz, gzip)", ingest.ErrInvalid, enc)
	}
	out, err := io.ReadAll(io.LimitReader(dec, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: decoding the %s body: %v", ingest.ErrInvalid, r.Header.Get("Content-Encoding"), err)
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("%w (more than %d bytes decoded)", ingest.ErrTooLarge, limit)
	}
	return out, nil
}
