package store_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/nixrepo/nixrepo/internal/s3test"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/internal/store/storetest"
)

func TestMemPassesConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Store {
		s, err := store.Open(context.Background(), "mem://", "", false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestFilePassesConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Store {
		dir := t.TempDir()
		s, err := store.Open(context.Background(), "file://"+dir, "", false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			s.Close()
			// A published tree must stay clean: no sidecars, no temp files.
			filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
				if err == nil && (strings.HasSuffix(p, ".attrs") || strings.HasSuffix(p, ".tmp")) {
					t.Errorf("file bucket left %s", p)
				}
				return nil
			})
		})
		return s
	})
}

func TestMemSharedPassesConformance(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (*store.Store, *store.Store) {
		s, err := store.Open(context.Background(), "mem://", "", false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, s
	})
}

// TestFileSharedPassesConformance opens every folder twice: two handles share nothing but
// the folder, as two processes would.
func TestFileSharedPassesConformance(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (*store.Store, *store.Store) {
		dir := t.TempDir()
		var ss [2]*store.Store
		for i := range ss {
			s, err := store.Open(context.Background(), "file://"+dir, "", false)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			ss[i] = s
		}
		return ss[0], ss[1]
	})
}

// TestVersityGWPassesConformance runs the conformance suites on a real S3-compatible server.
func TestVersityGWPassesConformance(t *testing.T) {
	srv := s3test.Start(t)
	open := func(t *testing.T) *store.Store {
		s, err := store.Open(context.Background(), srv.Bucket(t), "", false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("Run", func(t *testing.T) { storetest.Run(t, open) })
	t.Run("RunShared", func(t *testing.T) {
		storetest.RunShared(t, func(t *testing.T) (*store.Store, *store.Store) {
			url := srv.Bucket(t)
			var ss [2]*store.Store
			for i := range ss {
				s, err := store.Open(context.Background(), url, "", false)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				ss[i] = s
			}
			return ss[0], ss[1]
		})
	})
}

func TestGofakes3PassesConformance(t *testing.T) {
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testtesttest")
	n := 0
	storetest.Run(t, func(t *testing.T) *store.Store {
		n++
		bucket := fmt.Sprintf("b%d", n)
		if err := backend.CreateBucket(bucket); err != nil {
			t.Fatal(err)
		}
		url := fmt.Sprintf("s3://%s?endpoint=%s&use_path_style=true&region=us-east-1&disable_https=true&request_checksum_calculation=when_required&response_checksum_validation=when_required", bucket, srv.URL)
		s, err := store.Open(context.Background(), url, "", false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestResolveURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"file://./var/store", "file:///base/var/store"},
		{"file://../up", "file:///up"},
		{"file://var/store", "file:///base/var/store"},
		{"file:///abs/dir", "file:///abs/dir"},
		{"file:///abs/dir?metadata=skip", "file:///abs/dir?metadata=skip"},
		{"relative/folder", "file:///base/relative/folder"},
		{"/abs/folder", "file:///abs/folder"},
		{"s3://bucket?region=x", "s3://bucket?region=x"},
	}
	for _, tc := range tests {
		u, err := store.ResolveURL(tc.in, "/base")
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if u.String() != tc.want {
			t.Errorf("ResolveURL(%q) = %q, want %q", tc.in, u, tc.want)
		}
	}
}

func TestCheckRel(t *testing.T) {
	good := []string{"nar/abc.nar.xz", "log/x.drv", "realisations/sha256:ab!out.doi"}
	bad := []string{"", "/etc/passwd", "../x", "nar/../../x", "nar//x", "nar/./x", "a\\b", "a\x00b", "nar/x/"}
	for _, p := range good {
		if err := store.CheckRel(p); err != nil {
			t.Errorf("CheckRel(%q) = %v", p, err)
		}
	}
	for _, p := range bad {
		if err := store.CheckRel(p); err == nil {
			t.Errorf("CheckRel(%q) accepted", p)
		}
	}
}
