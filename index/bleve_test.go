package index

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestIndexRebuiltFromBucket(t *testing.T) {
	f := newFixture(t)
	f.add("main", "hello-2.12", "", 100)
	f.add("main", "hello-2.13", "", 100)
	f.add("main", "world-1.0", "", 100)
	dir := filepath.Join(t.TempDir(), "index")
	if _, err := Build(f.ctx, f.st, repoInfos("main"), &BuildOptions{IndexDir: dir}); err != nil {
		t.Fatal(err)
	}
	corruptions := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"folder deleted", func(t *testing.T) { os.RemoveAll(dir) }},
		{"CURRENT names a missing generation", func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, currentFile), []byte("g000000000099-deadbeef\n"), 0o644)
		}},
		{"segment files deleted", func(t *testing.T) {
			gd, _, err := readCurrent(dir)
			if err != nil {
				t.Fatal(err)
			}
			filepath.WalkDir(gd, func(p string, d os.DirEntry, err error) error {
				if strings.HasSuffix(p, ".zap") || strings.HasSuffix(p, ".bolt") {
					os.Remove(p)
				}
				return nil
			})
		}},
		{"meta garbage", func(t *testing.T) {
			gd, _, err := readCurrent(dir)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(gd, indexMetaFile), []byte("{garbage"), 0o644)
		}},
		{"behind the catalog", func(t *testing.T) {
			f.add("main", "world-1.1", "", 100)
			if _, err := Build(f.ctx, f.st, repoInfos("main"), nil); err != nil { // catalog only
				t.Fatal(err)
			}
		}},
	}
	for _, c := range corruptions {
		t.Run(c.name, func(t *testing.T) {
			c.do(t)
			x, rebuilt, err := EnsureIndex(f.ctx, f.st, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			if !rebuilt {
				t.Errorf("not rebuilt")
			}
			sums, err := x.Summaries([]string{"hello", "world"})
			if err != nil {
				t.Fatal(err)
			}
			if h := sums["hello"]; h.Latest() != "2.13" || len(h.Versions) != 2 {
				t.Errorf("hello = %+v", h)
			}
			if _, ok := sums["world"]; !ok {
				t.Errorf("world missing")
			}
			x2, rebuilt, err := EnsureIndex(f.ctx, f.st, dir)
			if err != nil || rebuilt {
				t.Errorf("second EnsureIndex: rebuilt %v, err %v", rebuilt, err)
			} else {
				x2.Close()
			}
		})
	}
	// Update repairs a lost index too.
	os.RemoveAll(dir)
	f.add("main", "world-1.2", "", 100)
	rep, err := Update(f.ctx, f.st, repoInfos("main"), &BuildOptions{IndexDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.IndexRebuilt || !slices.Equal(rep.Changed, []string{"world"}) {
		t.Errorf("report = %+v", rep)
	}
	if g, err := IndexGeneration(dir); err != nil || g != rep.Generation {
		t.Errorf("index generation %d, %v; want %d", g, err, rep.Generation)
	}
}

func TestEnsureIndexWithoutCatalog(t *testing.T) {
	f := newFixture(t)
	_, _, err := EnsureIndex(f.ctx, f.st, t.TempDir())
	if !errors.Is(err, ErrNoCatalog) {
		t.Errorf("err = %v, want ErrNoCatalog", err)
	}
	if _, err := OpenIndex(t.TempDir()); !errors.Is(err, ErrNoIndex) {
		t.Errorf("OpenIndex(empty) err = %v", err)
	}
}

// TestReaderSurvivesUpdates: an open reader keeps working while updates
// switch generations under it.
func TestReaderSurvivesUpdates(t *testing.T) {
	f := newFixture(t)
	f.add("main", "hello-1.0", "", 100)
	dir := t.TempDir()
	opts := &BuildOptions{IndexDir: dir}
	if _, err := Build(f.ctx, f.st, repoInfos("main"), opts); err != nil {
		t.Fatal(err)
	}
	x, err := OpenIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for _, v := range []string{"1.1", "1.2", "1.3"} {
		f.add("main", "hello-"+v, "", 100)
		if _, err := Update(f.ctx, f.st, repoInfos("main"), opts); err != nil {
			t.Fatal(err)
		}
	}
	sums, err := x.Summaries([]string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if sums["hello"].Latest() != "1.0" {
		t.Errorf("old reader sees %+v", sums["hello"])
	}
	y, err := OpenIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	sums, _ = y.Summaries([]string{"hello"})
	if sums["hello"].Latest() != "1.3" {
		t.Errorf("new reader sees %+v", sums["hello"])
	}
	ents, _ := os.ReadDir(dir)
	gens := 0
	for _, e := range ents {
		if e.IsDir() {
			gens++
		}
	}
	if gens > 2 {
		t.Errorf("%d generations kept, want at most 2", gens)
	}
}
