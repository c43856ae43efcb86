package server

import "strings"

// redactor removes the server's own file system paths (temporary folders,
// the bucket folder) from messages meant for clients; the server log keeps
// them.
type redactor struct{ dirs []string }

func newRedactor(dirs ...string) *redactor {
	r := &redactor{}
	for _, d := range dirs {
		if d = strings.TrimRight(d, "/"); d != "" {
			r.dirs = append(r.dirs, d+"/")
		}
	}
	return r
}

// clean rewrites every path under one of the folders: a path inside one
// of nixrepo's own working folders ("nixrepo-…/") keeps its part inside
// that folder (an archive entry's name), anything else becomes "(server
// file)".
func (r *redactor) clean(msg string) string {
	for _, d := range r.dirs {
		for {
			i := strings.Index(msg, d)
			if i < 0 {
				break
			}
			end := i + len(d)
			for end < len(msg) && !strings.ContainsRune(" \t\n\"':", rune(msg[end])) {
				end++
			}
			p := msg[i+len(d) : end]
			repl := "(server file)"
			if work, inside, ok := strings.Cut(p, "/"); ok && strings.HasPrefix(work, "nixrepo-") && inside != "" {
				repl = inside
			}
			msg = msg[:i] + repl + msg[end:]
		}
	}
	return msg
}
