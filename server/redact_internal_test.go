package server

import (
	"os"
	"strings"
	"testing"
)

// TestRedactorRemovesServerPaths: messages for clients name no path of the
// server's temporary folder or bucket folder; an archive entry inside
// nixrepo's unpack folder keeps its name.
func TestRedactorRemovesServerPaths(t *testing.T) {
	r := newRedactor("/tmp", "/srv/bucket/")
	tests := []struct{ in, want string }{
		{"mkdir /tmp/nixrepo-unpack-123/top/a: not a directory", "mkdir top/a: not a directory"},
		{"open /tmp/nixrepo-channel-9.tar.xz: no space left on device", "open (server file): no space left on device"},
		{`lstat "/tmp/other/x" failed`, `lstat "(server file)" failed`},
		{"rename /srv/bucket/r/nar/x.nar /srv/bucket/r/.tmp: denied", "rename (server file) (server file): denied"},
		{"/tmp/nixrepo-unpack-1/", "(server file)"},
		{"/tmp/nixrepo-unpack-1//tmp/x", "(server file)"},
		{"store path /nix/store/abc-x and /tmpfoo stay", "store path /nix/store/abc-x and /tmpfoo stay"},
	}
	for _, tc := range tests {
		if got := r.clean(tc.in); got != tc.want {
			t.Errorf("clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzRedactor: whatever the message, the cleaned one holds no path under
// the folders.
func FuzzRedactor(f *testing.F) {
	f.Add("mkdir /tmp/nixrepo-unpack-123/top/a: not a directory")
	f.Add("/tmp/nixrepo-a//tmp/nixrepo-b/c/tmp/")
	dir := os.TempDir()
	r := newRedactor(dir, "/srv/b")
	f.Fuzz(func(t *testing.T, msg string) {
		out := r.clean(msg)
		for _, d := range r.dirs {
			if strings.Contains(out, d) {
				t.Fatalf("clean(%q) = %q still holds %s", msg, out, d)
			}
		}
	})
}
