package server

import (
	"errors"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/nixrepo/nixrepo/internal/store"
)

// serveSite answers GET and HEAD of every path no other route takes with
// the static site publish writes under store.SitePrefix: "/" and folders
// are their index.html. The site holds only what its configuration lets
// anyone read (Options.Site is set only for a site of public repositories),
// so it needs no credentials, as static hosting of the bucket would not.
func (s *Server) serveSite(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "the site is read-only")
		return
	}
	rel := strings.TrimPrefix(r.URL.Path, "/")
	if rel == "" || strings.HasSuffix(rel, "/") {
		rel += "index.html"
	}
	if store.CheckRel(rel) != nil {
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	key := store.SitePrefix + rel
	rd, err := s.st.NewReader(r.Context(), key)
	if errors.Is(err, store.ErrNotFound) && path.Ext(rel) == "" {
		// A folder named without its slash: its index page.
		if ok, _ := s.st.Exists(r.Context(), key+"/index.html"); ok {
			http.Redirect(w, r, path.Base(rel)+"/", http.StatusFound)
			return
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	defer rd.Close()
	ct := mime.TypeByExtension(path.Ext(rel))
	if ct == "" {
		ct = rd.ContentType()
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", rd.ModTime(), rd)
}
