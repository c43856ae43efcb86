package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/search"
)

// SearchBackend answers the package API; *search.Engine implements it.
type SearchBackend interface {
	Search(ctx context.Context, query string, opts *search.Options) ([]search.Result, error)
	Package(ctx context.Context, name string) (*index.Package, error)
}

// SearchAPI returns the handler of the package API over b:
//
//	GET /api/search?q=QUERY[&repo=REPO][&limit=N]   → search.Response
//	GET /api/packages/<name>                         → index.Package
//
// Both only show repositories the request may read (public ones, or those
// its token grants; a virtual repository only when each member is
// readable too): versions and paths elsewhere are left out, and a package
// with nothing readable is not found.
//
// What a reader sends is bounded: the query by Options.SearchLimits
// (search.CheckQuery), repo= to a repository name's length, limit= to
// 1–1000, a package name to Nix's store path name length; each parameter
// at most once. Past a bound the answer is 400 with the bound.
func (s *Server) SearchAPI(b SearchBackend) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			httpError(w, http.StatusMethodNotAllowed, "method not allowed")
		case r.URL.Path == "/api/search":
			s.handleSearch(w, r, b)
		case strings.HasPrefix(r.URL.Path, "/api/packages/"):
			s.handlePackage(w, r, b)
		default:
			httpError(w, http.StatusNotFound, "not found")
		}
	})
}

// readableRepos lists the configured repositories the request may read
// (only `only` when it is set). status is non-zero when the request must
// be refused: bad credentials, or nothing readable without credentials.
func (s *Server) readableRepos(r *http.Request, only string) (repos []string, status int, msg string) {
	if only != "" {
		// Unknown and unreadable repositories get the same answer.
		if st, m := s.authorizeHeader(r.Header.Get("Authorization"), only, s.repos[only], false); st != 0 {
			return nil, st, m
		}
		return []string{only}, 0, ""
	}
	repos = []string{}
	for name, repo := range s.repos {
		st, m := s.authorize(r, repo, false)
		if st == 0 {
			repos = append(repos, name)
			continue
		}
		if st == http.StatusNotFound {
			continue // not readable with this token: not named either
		}
		if _, _, hasAuth := r.BasicAuth(); hasAuth || r.Header.Get("Authorization") != "" {
			// Credentials that are wrong (or not Basic) are refused
			// outright rather than treated as anonymous.
			if st == http.StatusUnauthorized || m == "invalid credentials" {
				return nil, st, m
			}
		}
		status, msg = st, m
	}
	sort.Strings(repos)
	if len(repos) == 0 && status != 0 {
		return nil, status, msg
	}
	return repos, 0, ""
}

// maxRepoNameLen is the longest repository name (internal/config's rule).
const maxRepoNameLen = 63

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request, b SearchBackend) {
	q := r.URL.Query()
	for _, p := range []string{"q", "repo", "limit"} {
		if len(q[p]) > 1 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("%s= is given %d times; give it once", p, len(q[p])))
			return
		}
	}
	query := strings.TrimSpace(q.Get("q"))
	if query == "" {
		httpError(w, http.StatusBadRequest, "missing query: /api/search?q=NAME[&repo=REPO][&limit=N]")
		return
	}
	if err := search.CheckQuery(query, s.opts.SearchLimits); errors.Is(err, search.ErrQueryTooLarge) {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			httpError(w, http.StatusBadRequest, "limit must be a number from 1 to 1000")
			return
		}
		limit = n
	}
	repo := q.Get("repo")
	if len(repo) > maxRepoNameLen {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("repo= is %d bytes long; repository names have at most %d characters", len(repo), maxRepoNameLen))
		return
	}
	repos, status, msg := s.readableRepos(r, repo)
	if status != 0 {
		s.refuse(w, status, msg)
		return
	}
	res, err := b.Search(r.Context(), query, &search.Options{Repos: repos, Limit: limit, Limits: s.opts.SearchLimits})
	if errors.Is(err, search.ErrEmptyQuery) {
		res, err = []search.Result{}, nil
	}
	if errors.Is(err, search.ErrQueryTooLarge) {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if errors.Is(err, index.ErrNoCatalog) {
		httpError(w, http.StatusServiceUnavailable, "no package catalog yet (run nixrepo index)")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, r, search.Response{Query: query, Repo: repo, Results: res})
}

func (s *Server) handlePackage(w http.ResponseWriter, r *http.Request, b SearchBackend) {
	name := r.PathValue("name")
	if name == "" {
		name, _ = url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/api/packages/"))
	}
	if name == "" || strings.Contains(name, "/") {
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	if len(name) > nix.MaxNameLen {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("package name is %d bytes long; the limit is %d (Nix's limit on store path names)", len(name), nix.MaxNameLen))
		return
	}
	repos, status, msg := s.readableRepos(r, "")
	if status != 0 {
		s.refuse(w, status, msg)
		return
	}
	p, err := b.Package(r.Context(), name)
	if errors.Is(err, index.ErrNoPackage) {
		httpError(w, http.StatusNotFound, "no package "+strconv.Quote(name))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	readable := map[string]bool{}
	for _, r := range repos {
		readable[r] = true
	}
	if p = index.FilterPackage(p, func(repo string) bool { return readable[repo] }); p == nil {
		httpError(w, http.StatusNotFound, "no package "+strconv.Quote(name))
		return
	}
	writeJSON(w, r, p)
}

func (s *Server) refuse(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="nixrepo"`)
	}
	httpError(w, status, msg)
}

func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "internal error")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(append(b, '\n'))
}
