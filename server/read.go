package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strconv"

	"github.com/nixrepo/nixrepo/internal/nix"
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
	hdrNosniff      = []string{"nosniff"}
)

// get serves GET and HEAD.
func (s *Server) get(w http.ResponseWriter, r *http.Request, repo *repoState, k kind, rel string) {
	h := w.Header()
	switch k {
	case kindCacheInfo:
		h["Content-Type"] = hdrCacheInfo
		writeBytes(w, r, repo.cacheInfo)
	case kindNarInfo:
		hash, _ := store.NarInfoHash(rel)
		b, ok, err := s.lookupNarInfo(r.Context(), repo, hash)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		if !ok {
			httpError(w, http.StatusNotFound, "not found")
			return
		}
		h["Content-Type"] = hdrNarInfo
		h["Cache-Control"] = hdrNarInfoCache
		writeBytes(w, r, b)
	case kindNar:
		h["Content-Type"] = hdrNar
		h["Cache-Control"] = hdrImmutable
		s.getNar(w, r, repo, rel)
	case kindListing, kindRealisation:
		h["Content-Type"] = hdrJSON
		s.serveObject(w, r, s.holder(r.Context(), repo, rel), rel)
	case kindLog:
		h["Content-Type"] = hdrLog
		s.serveObject(w, r, s.holder(r.Context(), repo, rel), rel)
	}
}

// lookupNarInfo finds the narinfo of hash: from the memory cache, the
// bucket, the members of a virtual repository in order (re-signed with the
// virtual repository's key when it has one), or a remote repository's
// upstream.
func (s *Server) lookupNarInfo(ctx context.Context, repo *repoState, hash string) ([]byte, bool, error) {
	if b, ok := repo.narinfos.get(hash); ok {
		return b, true, nil
	}
	if repo.members != nil {
		for _, m := range repo.members {
			b, ok, err := s.lookupNarInfo(ctx, m, hash)
			if err != nil {
				return nil, false, err
			}
			if !ok {
				continue
			}
			if repo.Key.Name != "" {
				ni, err := nix.ParseNarInfo(b)
				if err != nil {
					return nil, false, err
				}
				if err := ni.Sign(repo.Key); err != nil {
					return nil, false, err
				}
				b = ni.Bytes()
			}
			repo.narinfos.add(hash, b)
			return b, true, nil
		}
		return nil, false, nil
	}
	b, err := repo.cache.Get(ctx, store.NarInfoFile(hash))
	if errors.Is(err, store.ErrNotFound) {
		if repo.remote != nil {
			b, ok := s.remoteNarInfo(ctx, repo, hash)
			return b, ok, nil
		}
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	repo.narinfos.add(hash, b)
	return b, true, nil
}

// getNar serves a NAR file, pulling it through from upstream for a remote
// repository (or a virtual one's remote member) when it is not stored.
func (s *Server) getNar(w http.ResponseWriter, r *http.Request, repo *repoState, rel string) {
	candidates := []*repoState{repo}
	if repo.members != nil {
		candidates = repo.members
	}
	for _, c := range candidates {
		ok, err := c.cache.Exists(r.Context(), rel)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		if ok {
			s.serveObject(w, r, c, rel)
			return
		}
	}
	for _, c := range candidates {
		if c.remote == nil {
			continue
		}
		if s.remoteNar(w, r, c, rel) {
			return
		}
		if ok, _ := c.cache.Exists(r.Context(), rel); ok {
			s.serveObject(w, r, c, rel)
			return
		}
	}
	httpError(w, http.StatusNotFound, "not found")
}

// holder is the repository whose bucket holds rel: repo itself, or for a
// virtual repository its first member that has it.
func (s *Server) holder(ctx context.Context, repo *repoState, rel string) *repoState {
	for _, m := range repo.members {
		if ok, err := m.cache.Exists(ctx, rel); err == nil && ok {
			return m
		}
	}
	return repo
}

// writeBytes answers with a whole small body (HEAD: headers only). No
// Content-Encoding is ever set: Nix ≤ 2.33 decodes bodies itself and
// 2.8 fails on "identity".
func writeBytes(w http.ResponseWriter, r *http.Request, b []byte) {
	w.Header()["Content-Length"] = contentLength(len(b))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// errNotRegular: a folder bucket's object path is not a regular file.
var errNotRegular = errors.New("not a regular file")

// openLocal opens the object rel of repo as a file when the bucket is a
// local folder (local false otherwise). err is the open's error
// (os.ErrNotExist for a missing object) or errNotRegular.
func (s *Server) openLocal(repo *repoState, rel string) (f *os.File, fi os.FileInfo, local bool, err error) {
	p, local := repo.cache.LocalPath(rel)
	if !local {
		return nil, nil, false, nil
	}
	if f, err = os.Open(p); err != nil {
		return nil, nil, true, err
	}
	if fi, err = f.Stat(); err == nil && !fi.Mode().IsRegular() {
		err = errNotRegular
	}
	if err != nil {
		f.Close()
		return nil, nil, true, err
	}
	return f, fi, true, nil
}

// serveObject streams a stored object with Range and HEAD support. A file
// bucket's object is served from its file (sendfile); other buckets stream
// through a seekable reader.
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, repo *repoState, rel string) {
	w.Header()["Accept-Ranges"] = hdrBytes
	if f, fi, local, err := s.openLocal(repo, rel); local {
		if err == nil {
			defer f.Close()
			http.ServeContent(w, r, "", fi.ModTime(), f)
			return
		}
		if errors.Is(err, os.ErrNotExist) {
			httpError(w, http.StatusNotFound, "not found")
			return
		}
	}
	rd, err := repo.cache.NewReader(r.Context(), rel)
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

// contentLengths holds the Content-Length header values of small bodies, so
// serving a narinfo allocates no header.
var contentLengths = func() [][]string {
	v := make([][]string, 8192)
	for i := range v {
		v[i] = []string{strconv.Itoa(i)}
	}
	return v
}()

func contentLength(n int) []string {
	if n < len(contentLengths) {
		return contentLengths[n]
	}
	return []string{strconv.Itoa(n)}
}
