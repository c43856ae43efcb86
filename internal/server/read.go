package server

import (
	"errors"
	"net/http"
	"os"
	"strconv"

	"github.com/nixrepo/nixrepo/internal/store"
)

// Response headers, built once.
var (
	hdrNarInfo   = []string{store.ContentTypeNarInfo}
	hdrCacheInfo = []string{store.ContentTypeCacheInfo}
	hdrNar       = []string{store.ContentTypeNar}
	hdrJSON      = []string{"application/json"}
	hdrLog       = []string{store.ContentTypeLog}
	// NAR files are content-addressed and never change.
	hdrImmutable = []string{"public, max-age=31536000, immutable"}
	// Narinfos are write-once; a day is a safe lifetime for caches.
	hdrNarInfoCache = []string{"public, max-age=86400"}
	hdrBytes        = []string{"bytes"}
)

// get serves GET and HEAD.
func (s *Server) get(w http.ResponseWriter, r *http.Request, repo *repoState, k kind, rel string) {
	h := w.Header()
	switch k {
	case kindCacheInfo:
		h["Content-Type"] = hdrCacheInfo
		writeBytes(w, r, repo.cacheInfo)
	case kindNarInfo:
		s.getNarInfo(w, r, repo, rel)
	case kindNar:
		h["Content-Type"] = hdrNar
		h["Cache-Control"] = hdrImmutable
		s.serveObject(w, r, repo, rel)
	case kindListing, kindRealisation:
		h["Content-Type"] = hdrJSON
		s.serveObject(w, r, repo, rel)
	case kindLog:
		h["Content-Type"] = hdrLog
		s.serveObject(w, r, repo, rel)
	}
}

func (s *Server) getNarInfo(w http.ResponseWriter, r *http.Request, repo *repoState, rel string) {
	hash := rel[:len(rel)-len(".narinfo")]
	b, ok := repo.narinfos.get(hash)
	if !ok {
		var err error
		b, err = repo.cache.Get(r.Context(), rel2key(repo, rel))
		if errors.Is(err, store.ErrNotFound) {
			httpError(w, http.StatusNotFound, "not found")
			return
		}
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		repo.narinfos.add(hash, b)
	}
	h := w.Header()
	h["Content-Type"] = hdrNarInfo
	h["Cache-Control"] = hdrNarInfoCache
	writeBytes(w, r, b)
}

func rel2key(repo *repoState, rel string) string { return repo.cache.Key(rel) }

// writeBytes answers with a whole small body (HEAD: headers only). No
// Content-Encoding is ever set: Nix ≤ 2.33 decodes bodies itself and
// 2.8 fails on "identity".
func writeBytes(w http.ResponseWriter, r *http.Request, b []byte) {
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// serveObject streams a stored object with Range and HEAD support. A file
// bucket's object is served from its file (sendfile); other buckets stream
// through a seekable reader.
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, repo *repoState, rel string) {
	key := repo.cache.Key(rel)
	w.Header()["Accept-Ranges"] = hdrBytes
	if p, ok := s.st.LocalPath(key); ok {
		f, err := os.Open(p)
		if err == nil {
			defer f.Close()
			fi, err := f.Stat()
			if err == nil && fi.Mode().IsRegular() {
				http.ServeContent(w, r, "", fi.ModTime(), f)
				return
			}
		}
		if errors.Is(err, os.ErrNotExist) {
			httpError(w, http.StatusNotFound, "not found")
			return
		}
	}
	rd, err := repo.cache.NewReader(r.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	defer rd.Close()
	http.ServeContent(w, r, "", rd.ModTime(), rd)
}
