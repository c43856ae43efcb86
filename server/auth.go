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
//
// Reading a virtual repository reads its members: the request must also be
// allowed to read every member it serves from, so a virtual repository
// never shows a reader what the reader could not read directly (a public
// virtual repository over a private member, or a token granted only the
// virtual one, is refused). The refusal does not name the member.
func (s *Server) authorizeHeader(auth, name string, repo *repoState, write bool) (int, string) {
	var tok *Token
	if password, hasAuth := basicPassword(auth); hasAuth {
		if tok = s.lookupToken(password); tok == nil {
			return http.StatusForbidden, "invalid credentials"
		}
	} else if auth != "" {
		return http.StatusUnauthorized, "only HTTP Basic authentication is supported (token as the password)"
	}
	if repo == nil {
		return denyRead(tok, name)
	}
	if status, msg := mayAccess(tok, repo, write); status != 0 || write {
		return status, msg
	}
	for _, m := range repo.members {
		if status, _ := mayAccess(tok, m, false); status != 0 {
			if tok == nil {
				return http.StatusUnauthorized, "credentials required: virtual repository " + repo.Name + " serves from repositories that are not public (HTTP Basic with a nixrepo token as the password)"
			}
			return http.StatusForbidden, "token " + tok.Name + " may not read every repository virtual repository " + repo.Name + " serves from"
		}
	}
	return 0, ""
}

// denyRead is the answer for a repository the requester may not read, or
// one that does not exist: the same for both.
func denyRead(tok *Token, name string) (int, string) {
	if tok == nil {
		return http.StatusUnauthorized, "credentials required: HTTP Basic with a nixrepo token as the password"
	}
	return http.StatusNotFound, fmt.Sprintf("no repository %q readable with token %s", name, tok.Name)
}

// mayAccess decides for one repository; tok is nil without credentials.
func mayAccess(tok *Token, repo *repoState, write bool) (int, string) {
	if tok == nil {
		if !write && repo.Public {
			return 0, ""
		}
		return denyRead(nil, repo.Name)
	}
	if !(grants(tok.Read, repo.Name) || grants(tok.Write, repo.Name) || repo.Public) {
		return denyRead(tok, repo.Name)
	}
	if write && !grants(tok.Write, repo.Name) {
		return http.StatusForbidden, "token " + tok.Name + " may not upload to " + repo.Name
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
