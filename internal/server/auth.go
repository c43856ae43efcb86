package server

import (
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
)

// authorize decides a request. It returns 0 when allowed, else the status
// and reason: 401 (with a challenge) when credentials are needed and
// missing, 403 when they are wrong or not enough. Nix sends HTTP Basic
// preemptively; the token is the password and any user name is accepted
// (Cachix-style netrc files leave the login empty).
func (s *Server) authorize(r *http.Request, repo *repoState, write bool) (int, string) {
	return s.authorizeHeader(r.Header.Get("Authorization"), repo, write)
}

// authorizeHeader decides on the value of the Authorization header.
//
// Reading a virtual repository reads its members: the request must also be
// allowed to read every member it serves from, so a virtual repository
// never shows a reader what the reader could not read directly (a public
// virtual repository over a private member, or a token granted only the
// virtual one, is refused).
func (s *Server) authorizeHeader(auth string, repo *repoState, write bool) (int, string) {
	var tok *Token
	if password, hasAuth := basicPassword(auth); hasAuth {
		if tok = s.lookupToken(password); tok == nil {
			return http.StatusForbidden, "invalid credentials"
		}
	} else if auth != "" {
		return http.StatusUnauthorized, "only HTTP Basic authentication is supported (token as the password)"
	}
	if status, msg := mayAccess(tok, repo, write, ""); status != 0 || write {
		return status, msg
	}
	for _, m := range repo.members {
		if status, msg := mayAccess(tok, m, false, repo.Name); status != 0 {
			return status, msg
		}
	}
	return 0, ""
}

// mayAccess decides for one repository; tok is nil without credentials.
// via names the virtual repository repo is read through, if any.
func mayAccess(tok *Token, repo *repoState, write bool, via string) (int, string) {
	through := ""
	if via != "" {
		through = ", which virtual repository " + via + " serves from"
	}
	if tok == nil {
		if !write && repo.Public {
			return 0, ""
		}
		if via != "" {
			return http.StatusUnauthorized, "credentials required: virtual repository " + via + " serves from " + repo.Name + ", which is not public (HTTP Basic with a nixrepo token as the password)"
		}
		return http.StatusUnauthorized, "credentials required: HTTP Basic with a nixrepo token as the password"
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
	return http.StatusForbidden, "token " + tok.Name + " may not read " + repo.Name + through
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
