package ingest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nar"
	"github.com/nixrepo/nixrepo/internal/nar/nartest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// TestRefusedPathLeavesItsStoredNar: a run that stores a NAR file and then
// refuses its path (here: a reference is missing) leaves the file, because
// from the moment it is stored another writer may use it (a server upload
// of a path with the same NAR file sees it and commits a narinfo that names
// it). Deleting it once lost acknowledged uploads.
func TestRefusedPathLeavesItsStoredNar(t *testing.T) {
	files := sample(t)
	delete(files, dataHash+".narinfo")
	src := load(t, files)
	dst := memStore(t)
	rep := run(t, dst, src, false)
	if rep.Refused != 2 {
		t.Fatalf("refused %d paths, want 2 (both depend on the missing one): %+v", rep.Refused, rep.Paths)
	}
	for _, h := range []string{libHash, helloHash} {
		ni := narinfoOf(t, files, h)
		url := store.NarFile(ni.FileHash, ni.EffectiveCompression())
		if ok, err := dst.Exists(context.Background(), "r/"+url); err != nil || !ok {
			t.Errorf("the NAR file %s of refused %s was removed (exists %v, %v)", url, ni.StorePath, ok, err)
		}
	}
	assertClean(t, dst)
}

// TestConcurrentConsumingRunsRefuseNothing: runs consuming one source at
// once (as two scheduled jobs whose runs overlap) refuse no valid path: a
// path the other run took meanwhile is present or gone, and every path ends
// in the repository, complete, and out of the source.
func TestConcurrentConsumingRunsRefuseNothing(t *testing.T) {
	const paths = 120
	for trial := 0; trial < 4; trial++ {
		srcDir := t.TempDir()
		want := writeChain(t, srcDir, paths)
		src, err := store.OpenSource(context.Background(), "file://"+srcDir, "")
		if err != nil {
			t.Fatal(err)
		}
		dst, err := store.Open(context.Background(), "file://"+t.TempDir(), "", false)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		// Three runs, started a little apart, so that one lists the source
		// while another is already consuming it.
		reps := make([]*ingest.Report, 3)
		errs := make([]error, 3)
		for i := range reps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i*(trial+1)) * 4 * time.Millisecond)
				reps[i], errs[i] = ingest.Run(context.Background(), dst.Repo("r"), src.Root(), &ingest.Options{Key: testKey, Workers: 2, Consume: true})
			}()
		}
		wg.Wait()
		for i, rep := range reps {
			if errs[i] != nil {
				t.Fatalf("trial %d, run %d: %v", trial, i, errs[i])
			}
			for _, p := range rep.Paths {
				if p.Outcome == ingest.Refused {
					t.Errorf("trial %d, run %d refused %s: %s", trial, i, p.StorePath, p.Reason)
				}
			}
		}
		for _, sp := range want {
			if ok, err := dst.Repo("r").HasNarInfo(context.Background(), sp.HashPart()); err != nil || !ok {
				t.Errorf("trial %d: %s is not in the repository (%v)", trial, sp, err)
			}
		}
		if left, _ := filepath.Glob(filepath.Join(srcDir, "*.narinfo")); len(left) != 0 {
			t.Errorf("trial %d: %d narinfos left in the source", trial, len(left))
		}
		vr, err := ingest.Verify(context.Background(), dst.Repo("r"), &ingest.VerifyOptions{Keys: []nix.PublicKey{testKey.Public()}, Workers: 2})
		if err != nil || vr.Failed != 0 {
			t.Errorf("trial %d: verify: %v %+v", trial, err, vr)
		}
		src.Close()
		dst.Close()
	}
}

// writeChain writes n store paths into the binary cache folder dir, each
// referring to the one before it and to the first, with NARs of one small
// file each.
func writeChain(t *testing.T, dir string, n int) []nix.StorePath {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "nar"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out []nix.StorePath
	for i := 0; i < n; i++ {
		var d [20]byte
		rand.Read(d[:])
		sp, err := nix.ParseStorePath(fmt.Sprintf("%s/%s-chain-%d", nix.StoreDir, nix.EncodeNix32(d[:]), i))
		if err != nil {
			t.Fatal(err)
		}
		nar := nartest.File([]byte(fmt.Sprintf("path %d of the chain\n", i)))
		sum := sha256.Sum256(nar)
		ni := &nix.NarInfo{StorePath: sp, Compression: "none", FileHash: nix.SHA256(sum[:]), FileSize: uint64(len(nar)),
			NarHash: nix.SHA256(sum[:]), NarSize: uint64(len(nar))}
		if i > 0 {
			ni.References = append(ni.References, out[i-1])
		}
		if i > 1 {
			ni.References = append(ni.References, out[0])
		}
		ni.URL = store.NarFile(ni.FileHash, "none")
		if err := os.WriteFile(filepath.Join(dir, ni.URL), nar, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, sp.HashPart()+".narinfo"), ni.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, sp)
	}
	return out
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

// TestRacingUploadsListingFollowsWinner: two uploads of one store path with
// different NARs, through two Stores of one bucket at once: the listing
// beside the narinfo describes the NAR the narinfo names, whichever wins.
func TestRacingUploadsListingFollowsWinner(t *testing.T) {
	ctx := context.Background()
	sts := openTwice(t)
	for trial := 0; trial < 40; trial++ {
		var d [20]byte
		rand.Read(d[:])
		sp, err := nix.ParseStorePath(fmt.Sprintf("%s/%s-raced-%d", nix.StoreDir, nix.EncodeNix32(d[:]), trial))
		if err != nil {
			t.Fatal(err)
		}
		var infos [2][]byte
		listings := map[string][]byte{}
		for i, contents := range []string{"short\n", "rather longer contents\n"} {
			narFile := nartest.File([]byte(contents))
			sum := sha256.Sum256(narFile)
			ni := &nix.NarInfo{StorePath: sp, Compression: "none", FileHash: nix.SHA256(sum[:]), FileSize: uint64(len(narFile)),
				NarHash: nix.SHA256(sum[:]), NarSize: uint64(len(narFile))}
			ni.URL = store.NarFile(ni.FileHash, "none")
			if _, err := ingest.PutNar(ctx, sts[i].Repo("r"), ni.URL, bytes.NewReader(narFile), ingest.UploadOptions{}); err != nil {
				t.Fatal(err)
			}
			res, err := nar.Check(bytes.NewReader(narFile), nar.Options{Listing: true})
			if err != nil {
				t.Fatal(err)
			}
			listings[ni.NarHash.String()] = res.Listing
			infos[i] = ni.Bytes()
		}
		var wg sync.WaitGroup
		for i := range infos {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := ingest.PutNarInfo(ctx, sts[i].Repo("r"), sp.HashPart(), infos[i], testKey, ingest.Limits{}); err != nil && !errors.Is(err, ingest.ErrConflict) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		won, _, err := sts[0].Repo("r").ReadNarInfo(ctx, sp.HashPart())
		if err != nil {
			t.Fatal(err)
		}
		ls, err := sts[1].Get(ctx, "r/"+sp.HashPart()+".ls")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ls, listings[won.NarHash.String()]) {
			t.Errorf("trial %d: the listing describes the losing NAR", trial)
		}
	}
}

// TestUnsupportedCompressionOneMessage: Nix's compressions nixrepo does
// not verify (br, lz4, lzip) are refused with one message by batch ingest,
// a NAR upload and a narinfo upload alike.
func TestUnsupportedCompressionOneMessage(t *testing.T) {
	ctx := context.Background()
	for _, method := range []string{"br", "lz4", "lzip"} {
		want := fmt.Sprintf("unsupported compression method %q (supported: none, xz, zstd, bzip2, gzip)", method)
		var d [20]byte
		rand.Read(d[:])
		sp, err := nix.ParseStorePath(fmt.Sprintf("%s/%s-%s-1.0", nix.StoreDir, nix.EncodeNix32(d[:]), method))
		if err != nil {
			t.Fatal(err)
		}
		file := []byte("compressed bytes nixrepo cannot read")
		sum := sha256.Sum256(file)
		narSum := sha256.Sum256(nartest.File([]byte("x")))
		ni := &nix.NarInfo{StorePath: sp, Compression: method, FileHash: nix.SHA256(sum[:]), FileSize: uint64(len(file)),
			NarHash: nix.SHA256(narSum[:]), NarSize: 104}
		ni.URL = store.NarFile(ni.FileHash, method)
		src := load(t, map[string][]byte{ni.URL: file, sp.HashPart() + ".narinfo": ni.Bytes()})
		rep := run(t, memStore(t), src, false)
		if len(rep.Paths) != 1 || rep.Paths[0].Outcome != ingest.Refused || !strings.Contains(rep.Paths[0].Reason, want) {
			t.Errorf("ingest of a %s path: %+v, want refused with %q", method, rep.Paths, want)
		}
		repo := memStore(t).Repo("r")
		if _, err := ingest.PutNar(ctx, repo, ni.URL, bytes.NewReader(file), ingest.UploadOptions{}); !errors.Is(err, ingest.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("PutNar %s: %v, want %q", ni.URL, err, want)
		}
		if _, err := ingest.PutNarInfo(ctx, repo, sp.HashPart(), ni.Bytes(), testKey, ingest.Limits{}); !errors.Is(err, ingest.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("PutNarInfo with Compression %s: %v, want %q", method, err, want)
		}
	}
}
