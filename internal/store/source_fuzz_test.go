package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzSourceFolderKey: whatever key a source folder is asked for, a read
// returns only the bytes of a regular file inside the folder reached
// without a link, and nothing outside the folder is ever read or deleted.
func FuzzSourceFolderKey(f *testing.F) {
	for _, k := range []string{
		"inside.narinfo", "nar/x.nar", "linked/x.nar", "link.narinfo", "up.narinfo",
		"../outside/secret.narinfo", "nar/../../outside/secret.narinfo", "/etc/passwd",
		"nar//x.nar", "nar/", "", ".", "linked", "loop/x", "nar/x.nar/..", "nar\\x.nar",
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		fx := newSourceFixture(t)
		fx.write(t, filepath.Join(fx.src, "nar", "x.nar"), "inside nar")
		must(t, os.Symlink(filepath.Join(fx.outside, "nar"), filepath.Join(fx.src, "linked")))
		must(t, os.Symlink(filepath.Join(fx.outside, "secret.narinfo"), filepath.Join(fx.src, "link.narinfo")))
		must(t, os.Symlink("../outside/secret.narinfo", filepath.Join(fx.src, "up.narinfo")))
		must(t, os.Symlink("loop", filepath.Join(fx.src, "loop")))
		s := fx.open(t)
		ctx := context.Background()
		b, err := s.Get(ctx, key)
		if err == nil {
			if bytes.Contains(b, []byte("outside")) {
				t.Fatalf("Get %q read a file outside the source folder: %q", key, b)
			}
			// The key names a regular file reached without links.
			p := fx.src
			for _, part := range strings.Split(key, "/") {
				p = filepath.Join(p, part)
				fi, lerr := os.Lstat(p)
				if lerr != nil || fi.Mode()&os.ModeSymlink != 0 {
					t.Fatalf("Get %q succeeded through %s (%v)", key, p, lerr)
				}
			}
		}
		s.Stat(ctx, key)
		s.Delete(ctx, key)
		for p, want := range map[string]string{
			filepath.Join(fx.outside, "secret.narinfo"): "outside",
			filepath.Join(fx.outside, "nar", "x.nar"):   "outside nar",
		} {
			if got, err := os.ReadFile(p); err != nil || string(got) != want {
				t.Fatalf("key %q: %s is %q, %v; want it untouched", key, p, got, err)
			}
		}
	})
}
