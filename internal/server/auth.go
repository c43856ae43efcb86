package server

import (
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"slices"
)

// authorize decides a request. It returns 0 when allowed, else the status
// and reason: 401 (with a challenge) when credentials are needed and
// missing, 403 when they are wrong or not enough. Nix sends HTTP Basic
// preemptively; the token is the password and any user name is accepted
// (Cachix-style netrc files leave the login empty).
func (s *Server) authorize(r *http.Request, repo *repoState, write bool) (int, string) {
	_, password, hasAuth := r.BasicAuth()
	if !hasAuth {
		if r.Header.Get("Authorization") != "" {
			return http.StatusUnauthorized, "only HTTP Basic authentication is supported (token as the password)"
		}
		if !write && repo.Public {
			return 0, ""
		}
		return http.StatusUnauthorized, "credentials required: HTTP Basic with a nixrepo token as the password"
	}
	tok := s.lookupToken(password)
	if tok == nil {
		return http.StatusForbidden, "invalid credentials"
	}
	if write {
		if grants(tok.Write, repo.Name) {
			return 0, ""
		}
		return http.StatusForbidden, "token " + tok.Name + " may not upload to " + repo.Name
	}
	if grants(tok.Read, repo.Name) || grants(tok.Write, repo.Name) || repo.Public {
		return 0, ""
	}
	return http.StatusForbidden, "token " + tok.Name + " may not read " + repo.Name
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
