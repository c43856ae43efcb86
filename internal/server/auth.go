package server

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// authorize decides a request. It returns 0 when allowed, else the status
// and reason: 401 (with a challenge) when credentials are needed and
// missing, 403 when they are wrong or do not allow an upload, 404 when the
// token may not read the repository. Nix sends HTTP Basic
// preemptively; the token is the password and any user name is accepted
// (Cachix-style netrc files leave the login empty).
func (s *Server) authorize(r *http.Request, repo *repoState, write bool) (int, string) {
	return s.authorizeHeader(r.Header.Get("Authorization"), repo.Name, repo, write)
}

// authorizeHeader decides on the value of the Authorization header for
// the repository called name; repo is nil when no such repository is
// configured. The answer never tells a requester that may not read a
// repository whether it exists: without credentials, an unknown and a
// private repository both get 401; a token that may not read either gets
// the same 404. Status 0 implies repo is not nil.
func (s *Server) authorizeHeader(auth, name string, repo *repoState, write bool) (int, string) {
	password, hasAuth := basicPassword(auth)
	if !hasAuth {
		if auth != "" {
			return http.StatusUnauthorized, "only HTTP Basic authentication is supported (token as the password)"
		}
		if !write && repo != nil && repo.Public {
			return 0, ""
		}
		return http.StatusUnauthorized, "credentials required: HTTP Basic with a nixrepo token as the password"
	}
	tok := s.lookupToken(password)
	if tok == nil {
		return http.StatusForbidden, "invalid credentials"
	}
	if repo == nil || !(grants(tok.Read, name) || grants(tok.Write, name) || repo.Public) {
		return http.StatusNotFound, fmt.Sprintf("no repository %q readable with token %s", name, tok.Name)
	}
	if write && !grants(tok.Write, name) {
		return http.StatusForbidden, "token " + tok.Name + " may not upload to " + name
	}
	return 0, ""
}

// basicPassword is the password of an HTTP Basic Authorization header
// value, parsed as net/http's Request.BasicAuth parses it.
func basicPassword(auth string) (string, bool) {
	const prefix = "Basic "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return "", false
	}
	c, err := base64.StdEncoding.DecodeString(auth[len(prefix):])
	if err != nil {
		return "", false
	}
	_, password, ok := strings.Cut(string(c), ":")
	return password, ok
}

// lookupToken compares the password's hash with every configured token in
// constant time per token, so timing tells nothing about which one matched.
func (s *Server) lookupToken(password string) *Token {
	h := HashToken(password)
	var found *Token
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(h[:], s.tokens[i].SHA256[:]) == 1 {
			found = &s.tokens[i]
		}
	}
	return found
}

func grants(list []string, repo string) bool {
	return slices.Contains(list, "*") || slices.Contains(list, repo)
}

func base64URL(b []byte) string { return base64.URLEncoding.EncodeToString(b) }
