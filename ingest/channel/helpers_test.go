package channel_test

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/internal/store"

	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"
)

func memStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openTwice opens one folder bucket as two Stores, as two processes would:
// nothing in this process coordinates their writes.
func openTwice(t *testing.T) [2]*store.Store {
	t.Helper()
	dir := t.TempDir()
	var out [2]*store.Store
	for i := range out {
		st, err := store.Open(context.Background(), "file://"+dir, "", false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		out[i] = st
	}
	return out
}

// keys lists the keys under prefix, without it, sorted.
func keys(t *testing.T, s *store.Store, prefix string) []string {
	t.Helper()
	var out []string
	err := s.List(context.Background(), prefix, false, func(o store.Object) error {
		out = append(out, strings.TrimPrefix(o.Key, prefix))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}
