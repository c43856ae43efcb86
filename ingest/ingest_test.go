package ingest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// The sample cache (made by real Nix, see testdata/sample-cache.sh):
// hello-greeting → greeting-lib → greeting-data, hello-greeting → greeting-data.
const (
	dataHash  = "8yhfprxp9fym8hjpsb3z3hzsfbrk1z42"
	libHash   = "73jpyncq1iidbczv5idvcz9h35map68f"
	helloHash = "wp6h81bmqyf5awd57zi4icjq52bzb9kh"
	dataPath  = "/nix/store/8yhfprxp9fym8hjpsb3z3hzsfbrk1z42-greeting-data-2.1"
	libPath   = "/nix/store/73jpyncq1iidbczv5idvcz9h35map68f-greeting-lib-0.3"
	helloPath = "/nix/store/wp6h81bmqyf5awd57zi4icjq52bzb9kh-hello-greeting-1.0"
)

// sample is the sample cache as a map of relative name → bytes.
func sample(t *testing.T) map[string][]byte {
	t.Helper()
	root := filepath.Join("..", "testdata", "sample-cache")
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 7 {
		t.Fatalf("sample cache incomplete: %d files", len(files))
	}
	return files
}

func memStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func load(t *testing.T, files map[string][]byte) *store.Store {
	t.Helper()
	s := memStore(t)
	for k, v := range files {
		if err := s.Put(context.Background(), k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

var testKey = func() nix.SecretKey {
	k, err := nix.GenerateKey("test-repo-1", rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

func run(t *testing.T, dst *store.Store, src *store.Store, consume bool) *ingest.Report {
	t.Helper()
	rep, err := ingest.Run(context.Background(), dst.Repo("r"), src.Root(), &ingest.Options{Key: testKey, Workers: 2, Consume: consume})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

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

// narinfoOf parses a narinfo from the sample files.
func narinfoOf(t *testing.T, files map[string][]byte, hash string) *nix.NarInfo {
	t.Helper()
	ni, err := nix.ParseNarInfo(files[hash+".narinfo"])
	if err != nil {
		t.Fatal(err)
	}
	return ni
}

// replaceNar puts data as hash's NAR file and fixes the narinfo's URL,
// FileHash and FileSize, so that only deeper checks can catch a problem.
func replaceNar(t *testing.T, files map[string][]byte, hash string, data []byte) {
	t.Helper()
	ni := narinfoOf(t, files, hash)
	delete(files, ni.URL)
	sum := sha256.Sum256(data)
	ni.FileHash = nix.SHA256(sum[:])
	ni.FileSize = uint64(len(data))
	ni.URL = store.NarFile(ni.FileHash, ni.EffectiveCompression())
	files[ni.URL] = data
	files[hash+".narinfo"] = ni.Bytes()
}

// assertClean checks the repository holds exactly the objects of its
// narinfos: no partial or orphaned object is visible.
func assertClean(t *testing.T, dst *store.Store) {
	t.Helper()
	ctx := context.Background()
	want := map[string]bool{}
	repo := dst.Repo("r")
	err := repo.NarInfos(ctx, func(h string) error {
		ni, _, err := repo.ReadNarInfo(ctx, h)
		if err != nil {
			return err
		}
		want[h+".narinfo"], want[h+".ls"], want[ni.URL] = true, true, true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys(t, dst, "r/") {
		if !want[k] {
			t.Errorf("repository holds %s, which no narinfo accounts for", k)
		}
	}
	vr, err := ingest.Verify(ctx, repo, &ingest.VerifyOptions{Keys: []nix.PublicKey{testKey.Public()}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if vr.Failed != 0 {
		t.Errorf("verify after ingest: %+v", vr.Problems)
	}
}

func outcomes(rep *ingest.Report) map[string]ingest.PathReport {
	m := map[string]ingest.PathReport{}
	for _, p := range rep.Paths {
		m[p.StorePath] = p
	}
	return m
}

func TestIngestSignsAndStoresAsUploaded(t *testing.T) {
	files := sample(t)
	dst := memStore(t)
	rep := run(t, dst, load(t, files), false)
	if rep.Accepted != 3 || rep.Refused != 0 || rep.Present != 0 {
		t.Fatalf("first run: %+v", rep)
	}
	assertClean(t, dst)
	// Signed, with the repository key, and Nix's exact format.
	ni, raw, err := dst.Repo("r").ReadNarInfo(context.Background(), helloHash)
	if err != nil {
		t.Fatal(err)
	}
	if !ni.Verify([]nix.PublicKey{testKey.Public()}) {
		t.Fatalf("not signed:\n%s", raw)
	}
	if !bytes.Equal(ni.Bytes(), raw) {
		t.Fatalf("stored narinfo is not in Nix's canonical form:\n%s", raw)
	}
	src := narinfoOf(t, files, helloHash)
	if ni.URL != src.URL || !ni.NarHash.Equal(src.NarHash) || ni.FileSize != src.FileSize {
		t.Fatalf("stored narinfo differs from the source's claims:\n%s", raw)
	}
	// NAR stored as uploaded, byte for byte.
	nar, err := dst.Get(context.Background(), "r/"+ni.URL)
	if err != nil || !bytes.Equal(nar, files[src.URL]) {
		t.Fatalf("NAR not stored as uploaded: %v", err)
	}
	// The listing is there.
	if ls, err := dst.Get(context.Background(), "r/"+helloHash+".ls"); err != nil || !bytes.HasPrefix(ls, []byte(`{"version":1,"root":`)) {
		t.Fatalf("listing: %q %v", ls, err)
	}

	// Re-ingesting the same paths is a no-op.
	rep = run(t, dst, load(t, files), false)
	if rep.Accepted != 0 || rep.Present != 3 || rep.Refused != 0 || rep.BytesRead != 0 {
		t.Fatalf("second run: %+v", rep)
	}
}

func TestIngestRefusesBadPathsWithReasons(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, files map[string][]byte)
		// refused maps store path (or narinfo name) → substring of the reason.
		refused map[string]string
	}{
		{
			name: "NAR byte flipped",
			mutate: func(t *testing.T, f map[string][]byte) {
				u := narinfoOf(t, f, dataHash).URL
				b := bytes.Clone(f[u])
				b[len(b)/2] ^= 0x40
				f[u] = b
			},
			refused: map[string]string{
				dataPath:  "FileHash mismatch: narinfo claims sha256:0gm6dydmdwj6mz63yrw4d1sy23lvqc7rc5df9w9lawh9mr0wrrfx, file has sha256:",
				libPath:   "missing references: " + dataPath + " (refused in this batch)",
				helloPath: "(refused in this batch)",
			},
		},
		{
			name: "NAR replaced by another valid NAR",
			mutate: func(t *testing.T, f map[string][]byte) {
				replaceNar(t, f, dataHash, f[narinfoOf(t, f, libHash).URL])
			},
			refused: map[string]string{
				// The other NAR is longer: decoding stops at the claimed
				// NarSize.
				dataPath:  "NarSize mismatch: narinfo claims 1240, the NAR is longer (decoding stopped after 1240 bytes)",
				libPath:   "(refused in this batch)",
				helloPath: "(refused in this batch)",
			},
		},
		{
			name: "truncated xz",
			mutate: func(t *testing.T, f map[string][]byte) {
				b := f[narinfoOf(t, f, helloHash).URL]
				replaceNar(t, f, helloHash, b[:len(b)/2])
			},
			refused: map[string]string{helloPath: "xz"},
		},
		{
			name: "narinfo with CRLF",
			mutate: func(t *testing.T, f map[string][]byte) {
				f[helloHash+".narinfo"] = bytes.ReplaceAll(f[helloHash+".narinfo"], []byte("\n"), []byte("\r\n"))
			},
			refused: map[string]string{helloHash + ".narinfo": "malformed narinfo"},
		},
		{
			name: "narinfo without NarHash",
			mutate: func(t *testing.T, f map[string][]byte) {
				f[helloHash+".narinfo"] = dropLine(f[helloHash+".narinfo"], "NarHash: ")
			},
			refused: map[string]string{helloHash + ".narinfo": "NarHash"},
		},
		{
			name: "bad store path",
			mutate: func(t *testing.T, f map[string][]byte) {
				f[helloHash+".narinfo"] = bytes.Replace(f[helloHash+".narinfo"], []byte("-hello-greeting-1.0"), []byte("-hello/../greeting"), 1)
			},
			refused: map[string]string{helloHash + ".narinfo": "malformed narinfo"},
		},
		{
			name: "unknown compression",
			mutate: func(t *testing.T, f map[string][]byte) {
				f[helloHash+".narinfo"] = bytes.Replace(f[helloHash+".narinfo"], []byte("Compression: xz"), []byte("Compression: lzop"), 1)
			},
			refused: map[string]string{helloPath: "lzop"},
		},
		{
			name: "reference missing from the batch",
			mutate: func(t *testing.T, f map[string][]byte) {
				delete(f, narinfoOf(t, f, dataHash).URL)
				delete(f, dataHash+".narinfo")
			},
			refused: map[string]string{
				libPath:   "missing references: " + dataPath,
				helloPath: "missing references: ",
			},
		},
		{
			name: "NAR file missing",
			mutate: func(t *testing.T, f map[string][]byte) {
				delete(f, narinfoOf(t, f, helloHash).URL)
			},
			refused: map[string]string{helloPath: "is missing from the source"},
		},
		{
			name: "narinfo for another path",
			mutate: func(t *testing.T, f map[string][]byte) {
				f["00000000000000000000000000000000.narinfo"] = f[helloHash+".narinfo"]
			},
			refused: map[string]string{"00000000000000000000000000000000.narinfo": "describes another store path"},
		},
		{
			name: "NAR URL escaping the cache",
			mutate: func(t *testing.T, f map[string][]byte) {
				ni := narinfoOf(t, f, helloHash)
				ni.URL = "../../etc/passwd"
				f[helloHash+".narinfo"] = ni.Bytes()
			},
			refused: map[string]string{helloPath: "URL"},
		},
		{
			name: "malformed signature",
			mutate: func(t *testing.T, f map[string][]byte) {
				f[helloHash+".narinfo"] = append(f[helloHash+".narinfo"], "Sig: k:AAAA\n"...)
			},
			refused: map[string]string{helloPath: "malformed signature"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := sample(t)
			tc.mutate(t, files)
			dst := memStore(t)
			rep := run(t, dst, load(t, files), false)
			got := outcomes(rep)
			for path, reason := range tc.refused {
				p, ok := got[path]
				if !ok {
					t.Errorf("no report for %s; report: %+v", path, rep.Paths)
					continue
				}
				if p.Outcome != ingest.Refused || !strings.Contains(p.Reason, reason) {
					t.Errorf("%s: %s %q, want refused with %q", path, p.Outcome, p.Reason, reason)
				}
			}
			if rep.Refused != len(tc.refused) {
				t.Errorf("%d refused, want %d: %+v", rep.Refused, len(tc.refused), rep.Paths)
			}
			for path, p := range got {
				if _, bad := tc.refused[path]; !bad && p.Outcome != ingest.Accepted {
					t.Errorf("%s: %s %q, want accepted", path, p.Outcome, p.Reason)
				}
			}
			assertClean(t, dst)
		})
	}
}

func dropLine(b []byte, prefix string) []byte {
	var out []byte
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte(prefix)) {
			out = append(out, l...)
		}
	}
	return out
}

func TestIngestRefusesConflictingReupload(t *testing.T) {
	files := sample(t)
	dst := memStore(t)
	run(t, dst, load(t, files), false)
	// A second upload claims different contents for greeting-data: the NAR
	// of greeting-lib with its true hashes.
	other := sample(t)
	lib := narinfoOf(t, other, libHash)
	data := narinfoOf(t, other, dataHash)
	data.URL, data.FileHash, data.FileSize, data.NarHash, data.NarSize = lib.URL, lib.FileHash, lib.FileSize, lib.NarHash, lib.NarSize
	other = map[string][]byte{dataHash + ".narinfo": data.Bytes(), lib.URL: other[lib.URL]}
	rep := run(t, dst, load(t, other), false)
	p := outcomes(rep)[dataPath]
	if p.Outcome != ingest.Refused || !strings.Contains(p.Reason, "conflicts with the repository's copy") || !strings.Contains(p.Reason, "first upload wins") {
		t.Fatalf("conflicting re-upload: %+v", p)
	}
	// The original is untouched.
	ni, _, err := dst.Repo("r").ReadNarInfo(context.Background(), dataHash)
	if err != nil || !ni.NarHash.Equal(narinfoOf(t, files, dataHash).NarHash) {
		t.Fatalf("original overwritten: %v", err)
	}
	assertClean(t, dst)
}

func TestIngestReferencesAlreadyInRepo(t *testing.T) {
	files := sample(t)
	dst := memStore(t)
	only := func(hashes ...string) map[string][]byte {
		m := map[string][]byte{}
		for _, h := range hashes {
			m[h+".narinfo"] = files[h+".narinfo"]
			u := narinfoOf(t, files, h).URL
			m[u] = files[u]
		}
		return m
	}
	if rep := run(t, dst, load(t, only(dataHash)), false); rep.Accepted != 1 {
		t.Fatalf("%+v", rep)
	}
	if rep := run(t, dst, load(t, only(libHash, helloHash)), false); rep.Accepted != 2 || rep.Refused != 0 {
		t.Fatalf("references already in the repository must count: %+v", rep.Paths)
	}
	assertClean(t, dst)
}

func TestIngestConsumeLeavesOnlyRefused(t *testing.T) {
	files := sample(t)
	// Break one path so that something is refused and must stay.
	f2 := bytes.Clone(files[narinfoOf(t, files, helloHash).URL])
	f2[10] ^= 1
	files[narinfoOf(t, files, helloHash).URL] = f2
	dir := t.TempDir()
	for k, v := range files {
		p := filepath.Join(dir, filepath.FromSlash(k))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, v, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := store.Open(context.Background(), dir, "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := memStore(t)
	rep := run(t, dst, src, true)
	if rep.Accepted != 2 || rep.Refused != 1 || rep.Consumed != 2 {
		t.Fatalf("%+v", rep)
	}
	left := keys(t, src, "")
	want := []string{narinfoOf(t, files, helloHash).URL, "nix-cache-info", helloHash + ".narinfo"}
	sort.Strings(want)
	if strings.Join(left, " ") != strings.Join(want, " ") {
		t.Fatalf("source after consume = %v, want %v", left, want)
	}
	// The next run only sees the refused path.
	rep = run(t, dst, src, true)
	if rep.Accepted != 0 || rep.Refused != 1 || len(rep.Paths) != 1 {
		t.Fatalf("second run: %+v", rep)
	}
}

func TestIngestWithoutKeyFails(t *testing.T) {
	_, err := ingest.Run(context.Background(), memStore(t).Repo("r"), memStore(t).Root(), &ingest.Options{})
	if err == nil {
		t.Fatal("ingest without a key must fail")
	}
}

func TestIdenticalNarStoredOnce(t *testing.T) {
	files := sample(t)
	// A second store path with exactly greeting-data's contents: the NAR is
	// byte-identical, so the file must be stored once.
	twin := narinfoOf(t, files, dataHash)
	p, err := nix.ParseStorePath("/nix/store/00000000000000000000000000000000-greeting-data-twin-2.1")
	if err != nil {
		t.Fatal(err)
	}
	twin.StorePath = p
	files["00000000000000000000000000000000.narinfo"] = twin.Bytes()
	dst := memStore(t)
	rep := run(t, dst, load(t, files), false)
	if rep.Accepted != 4 {
		t.Fatalf("%+v", rep.Paths)
	}
	stored := 0
	for _, pr := range rep.Paths {
		if pr.NarStored {
			stored++
		}
	}
	if stored != 3 {
		t.Fatalf("%d NAR files stored for 3 distinct NARs: %+v", stored, rep.Paths)
	}
	if nars := keys(t, dst, "r/nar/"); len(nars) != 3 {
		t.Fatalf("nar files: %v", nars)
	}
	assertClean(t, dst)
}

func TestIngestIntoS3RefusesOnlyTheBadPath(t *testing.T) {
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testtesttest")
	if err := backend.CreateBucket("repo"); err != nil {
		t.Fatal(err)
	}
	dst, err := store.Open(context.Background(), "s3://repo?endpoint="+srv.URL+"&use_path_style=true&region=us-east-1&disable_https=true&request_checksum_calculation=when_required&response_checksum_validation=when_required", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	files := sample(t)
	b := bytes.Clone(files[narinfoOf(t, files, helloHash).URL])
	b[len(b)-3] ^= 1
	files[narinfoOf(t, files, helloHash).URL] = b
	rep := run(t, dst, load(t, files), false)
	if rep.Accepted != 2 || rep.Refused != 1 {
		t.Fatalf("%+v", rep.Paths)
	}
	assertClean(t, dst)
}
