package index

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestStorePathsPastLimitSkipped: a snapshot's store-paths.xz that decodes
// past its limit is not used at all: the catalog records none of its
// package versions (rather than those before the limit, which would look
// like a complete list), the build says so in a warning, and other
// snapshots are read as usual. Before, the list was silently cut at the
// limit.
func TestStorePathsPastLimitSkipped(t *testing.T) {
	f := newFixture(t)
	f.add("main", "hello-2.12", "", 100)
	f.add("main", "zlib-1.3", "", 100)
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	small := []string{storePath("zlib-1.3")}
	big := []string{storePath("hello-2.12"), storePath("zlib-1.3"), storePath("glibc-2.40")}
	f.channel("main", "c",
		testSnapshot{id: "s1", uploaded: t1, storePaths: small},
		testSnapshot{id: "s2", uploaded: t1.Add(time.Hour), storePaths: big})
	// The limit falls at the end of big's second line: cut there, the list
	// would still parse.
	old := maxStorePaths
	maxStorePaths = int64(len(big[0]) + 1 + len(big[1]) + 1)
	t.Cleanup(func() { maxStorePaths = old })

	var log bytes.Buffer
	cat, err := Build(f.ctx, f.st, repoInfos("main"), &BuildOptions{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if got := findPkg(t, cat, "hello").Versions[0].Channels; len(got) != 0 {
		t.Errorf("hello 2.12 channels = %v; want none (s2's list is past its limit)", got)
	}
	if got := findPkg(t, cat, "zlib").Versions[0].Channels; !slices.Equal(got, []string{"main/c/s1"}) {
		t.Errorf("zlib 1.3 channels = %v; want s1 only", got)
	}
	if !strings.Contains(log.String(), "skipping unreadable store-paths.xz") || !strings.Contains(log.String(), "main/channels/c/nixpkgs/s2/store-paths.xz") ||
		!strings.Contains(log.String(), "limit") {
		t.Errorf("warnings: %q; want s2's store-paths.xz named with its limit", log.String())
	}
}
