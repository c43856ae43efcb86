package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/compress"
	"github.com/nixrepo/nixrepo/internal/nar/nartest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// zeros yields n zero bytes and counts what was read.
type zeros struct {
	n    int64
	read atomic.Int64
}

func (z *zeros) Read(p []byte) (int, error) {
	left := z.n - z.read.Load()
	if left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	clear(p)
	z.read.Add(int64(len(p)))
	return len(p), nil
}

// bigFileNAR returns a reader of a NAR holding one regular file of size
// zero bytes, generated as it is read, and the counter of the file's bytes
// read so far.
func bigFileNAR(size int64) (io.Reader, *zeros) {
	z := &zeros{n: size}
	head := append(nartest.Strings("nix-archive-1", "(", "type", "regular", "contents"), binary.LittleEndian.AppendUint64(nil, uint64(size))...)
	tail := append(make([]byte, -size&7), nartest.Strings(")")...)
	return io.MultiReader(bytes.NewReader(head), z, bytes.NewReader(tail)), z
}

// zstdStream compresses r on the fly: the encoder only runs as far as the
// stream is read, so how much of r was consumed tells how much a consumer
// decoded.
func zstdStream(t *testing.T, r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		w, err := zstd.NewWriter(pw, zstd.WithEncoderConcurrency(1))
		if err == nil {
			_, err = io.Copy(w, r)
			if err == nil {
				err = w.Close()
			}
		}
		pw.CloseWithError(err)
	}()
	t.Cleanup(func() { pr.CloseWithError(errors.New("test over")) })
	return pr
}

// TestMeasureStopsAtClaimedNarSize: when a narinfo claims NarSize 120,
// Measure stops decoding a NAR of 2 GiB right after byte 120 (it reads
// no more of the file), and says so; without a claim it stops at
// Limits.MaxNarSize with ErrTooLarge.
func TestMeasureStopsAtClaimedNarSize(t *testing.T) {
	const size = 2 << 30
	for _, tc := range []struct {
		name        string
		compression string
		o           ingest.MeasureOptions
		want        string
		tooLarge    bool
	}{
		{"claimed, none", "none", ingest.MeasureOptions{NarSize: 120}, "NarSize mismatch: narinfo claims 120, the NAR is longer (decoding stopped after 120 bytes)", false},
		{"claimed, zstd", "zstd", ingest.MeasureOptions{NarSize: 120}, "NarSize mismatch: narinfo claims 120, the NAR is longer (decoding stopped after 120 bytes)", false},
		{"limit, none", "none", ingest.MeasureOptions{Limits: ingest.Limits{MaxNarSize: 1 << 20}}, "the NAR is larger than the limit of 1048576 bytes (decoding stopped there)", true},
		{"limit, zstd", "zstd", ingest.MeasureOptions{Limits: ingest.Limits{MaxNarSize: 1 << 20}}, "the NAR is larger than the limit of 1048576 bytes (decoding stopped there)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nar, decoded := bigFileNAR(size)
			var file io.Reader = nar
			if tc.compression == "zstd" {
				file = zstdStream(t, nar)
			}
			o := tc.o
			o.Compression = tc.compression
			start := time.Now()
			_, err := ingest.Measure(file, o)
			var le *ingest.LimitError
			if !errors.As(err, &le) || err.Error() != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if errors.Is(err, ingest.ErrTooLarge) != tc.tooLarge || !errors.Is(err, compress.ErrTooLarge) {
				t.Errorf("%v: ErrTooLarge %v, want %v", err, errors.Is(err, ingest.ErrTooLarge), tc.tooLarge)
			}
			// The file is read by 256 KiB chunks and the zstd encoder
			// runs a little ahead; nothing near the 2 GiB.
			if n := decoded.read.Load(); n > 16<<20 {
				t.Errorf("%d bytes of the file's contents were produced before Measure stopped", n)
			}
			t.Logf("%d bytes of file contents produced, %s", decoded.read.Load(), time.Since(start))
		})
	}
}

// TestPullNarStopsAtClaimedNarSize: an upstream whose narinfo claims
// NarSize 120 and serves a 2 GiB NAR is refused after a few MiB of it,
// not after downloading and decoding the whole of it.
func TestPullNarStopsAtClaimedNarSize(t *testing.T) {
	const size = 2 << 30
	var served atomic.Int64
	handlerDone := make(chan struct{}, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { handlerDone <- struct{}{} }()
		nar, _ := bigFileNAR(size)
		buf := make([]byte, 64<<10)
		for {
			n, err := nar.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				served.Add(int64(n))
			}
			if err != nil {
				return
			}
		}
	}))
	defer ts.Close()
	sp, err := nix.ParseStorePath("/nix/store/" + dataHash + "-big")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("not the file"))
	ni := &nix.NarInfo{StorePath: sp, URL: "nar/big.nar", Compression: "none", FileHash: nix.SHA256(sum[:]), NarHash: nix.SHA256(sum[:]), NarSize: 120}
	up := ingest.NewUpstream(ts.URL, nil)
	repo := memStore(t).Repo("r")
	start := time.Now()
	_, err = ingest.PullNar(context.Background(), repo, up, ni, nil)
	if !errors.Is(err, ingest.ErrMismatch) || !strings.Contains(err.Error(), "NarSize mismatch: narinfo claims 120, the NAR is longer") {
		t.Fatalf("got %v", err)
	}
	up.Client.CloseIdleConnections()
	select {
	case <-handlerDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the upstream is still sending")
	}
	if n := served.Load(); n > 64<<20 {
		t.Errorf("the upstream sent %d MiB before the pull stopped", n>>20)
	}
	if ok, _ := repo.Exists(context.Background(), store.NarFile(ni.FileHash, "none")); ok {
		t.Error("the refused NAR is visible")
	}
	t.Logf("%v after %s; upstream sent %d KiB", err, time.Since(start), served.Load()>>10)
}

func zstdBytes(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

// narInfoFor describes an uploaded NAR file for PutNarInfo.
func narInfoFor(t *testing.T, hash string, file []byte, compression string, m ingest.Measured) []byte {
	t.Helper()
	sum := sha256.Sum256(file)
	fh := nix.SHA256(sum[:])
	return []byte(fmt.Sprintf("StorePath: /nix/store/%s-listing-test\nURL: %s\nCompression: %s\nFileHash: %s\nFileSize: %d\nNarHash: %s\nNarSize: %d\nReferences: \n",
		hash, store.NarFile(fh, compression), compression, fh, len(file), m.NarHash, m.NarSize))
}

// TestPutNarSkipsOversizeListing: a NAR whose listing exceeds MaxListing
// is accepted without one; nar-meta stays small and records that; when
// its narinfo is written, a listing the client uploaded is removed (the
// served listing is always the computed one).
func TestPutNarSkipsOversizeListing(t *testing.T) {
	ctx := context.Background()
	st := memStore(t)
	repo := st.Repo("r")
	lim := ingest.Limits{MaxListing: 64 << 10}
	for _, tc := range []struct {
		name string
		n    int
		skip bool
	}{
		{"small listing", 10, false},
		{"large listing", 400, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := zstdBytes(t, nartest.Symlinks(tc.n, 1000))
			sum := sha256.Sum256(file)
			fh := nix.SHA256(sum[:])
			m, err := ingest.PutNar(ctx, repo, store.NarFile(fh, "zstd"), bytes.NewReader(file), ingest.UploadOptions{Limits: lim})
			if err != nil {
				t.Fatal(err)
			}
			if m.ListingSkipped != tc.skip || (len(m.Listing) == 0) != tc.skip {
				t.Fatalf("listing %d bytes, skipped %v", len(m.Listing), m.ListingSkipped)
			}
			meta, err := st.Get(ctx, repo.NarMetaKey(fh.Nix32()))
			if err != nil {
				t.Fatal(err)
			}
			if tc.skip && (len(meta) > 1024 || !bytes.Contains(meta, []byte(`"listingSkipped":true`))) {
				t.Errorf("nar-meta of %d bytes: %s", len(meta), meta[:min(len(meta), 300)])
			}
			hash := dataHash
			if tc.skip {
				hash = libHash
			}
			clientLs := []byte(`{"version":1,"root":{"type":"directory","entries":{}}}`)
			if err := ingest.PutListing(ctx, repo, hash, bytes.NewReader(clientLs), ingest.Limits{}); err != nil {
				t.Fatal(err)
			}
			if _, err := ingest.PutNarInfo(ctx, repo, hash, narInfoFor(t, hash, file, "zstd", m), testKey, lim); err != nil {
				t.Fatal(err)
			}
			ls, err := st.Get(ctx, repo.Key(store.ListingFile(hash)))
			switch {
			case tc.skip && !errors.Is(err, store.ErrNotFound):
				t.Errorf("the client's listing is still served (%v, %d bytes)", err, len(ls))
			case !tc.skip && (err != nil || !bytes.Equal(ls, m.Listing)):
				t.Errorf("served listing is not the computed one: %v", err)
			}
		})
	}
}

// TestPutNarInfoIgnoresOversizeNarMeta: a nar-meta object larger than
// any this version writes (an earlier version embedded listings of any
// size) is not read whole: the NAR is measured again and the record
// rewritten small. The re-measurement stops at the claimed NarSize.
func TestPutNarInfoIgnoresOversizeNarMeta(t *testing.T) {
	ctx := context.Background()
	st := memStore(t)
	repo := st.Repo("r")
	lim := ingest.Limits{MaxListing: 64 << 10}
	file := zstdBytes(t, nartest.Symlinks(10, 10))
	sum := sha256.Sum256(file)
	fh := nix.SHA256(sum[:])
	m, err := ingest.PutNar(ctx, repo, store.NarFile(fh, "zstd"), bytes.NewReader(file), ingest.UploadOptions{Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	huge := fmt.Sprintf(`{"fileHash":%q,"fileSize":%d,"narHash":%q,"narSize":%d,"listing":{"version":1,"root":{"type":"symlink","target":"%s"}}}`,
		fh, len(file), m.NarHash, m.NarSize+1, strings.Repeat("t", 100<<10))
	if err := st.Put(ctx, repo.NarMetaKey(fh.Nix32()), []byte(huge), nil); err != nil {
		t.Fatal(err)
	}
	// The recorded NarSize is wrong on purpose: if the record were used,
	// the narinfo would be refused.
	if _, err := ingest.PutNarInfo(ctx, repo, dataHash, narInfoFor(t, dataHash, file, "zstd", m), testKey, lim); err != nil {
		t.Fatalf("narinfo refused: %v", err)
	}
	meta, _ := st.Get(ctx, repo.NarMetaKey(fh.Nix32()))
	if len(meta) > 4<<10 {
		t.Errorf("nar-meta still %d bytes", len(meta))
	}

	// Without a record, the NAR is measured again, up to the NarSize the
	// narinfo claims.
	if err := st.Delete(ctx, repo.NarMetaKey(fh.Nix32())); err != nil {
		t.Fatal(err)
	}
	short := m
	short.NarSize = 120
	_, err = ingest.PutNarInfo(ctx, repo, libHash, narInfoFor(t, libHash, file, "zstd", short), testKey, lim)
	if !errors.Is(err, ingest.ErrMismatch) || !strings.Contains(err.Error(), "NarSize mismatch: narinfo claims 120, the NAR is longer (decoding stopped after 120 bytes)") {
		t.Fatalf("got %v", err)
	}
}

// TestPutListingCheckedWhileStreamed: a client listing is checked token by token
// while it is stored, with tokens of at most 1 MiB and bounded nesting;
// what is not a listing is refused with ErrInvalid and leaves nothing, and
// a failing body's error is returned as it is.
func TestPutListingCheckedWhileStreamed(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		body string
		ok   bool
	}{
		{"Nix's listing", `{"version":1,"root":{"type":"directory","entries":{"bin":{"type":"regular","size":72,"executable":true,"narOffset":400}}}}`, true},
		{"keys in any order, spaces", " {\"root\": {\"type\":\"symlink\",\"target\":\"x\"}, \"version\": 1}\n", true},
		{"unknown keys", `{"version":1,"root":{},"x":[1,{"a":[]}]}`, true},
		{"version 2", `{"version":2,"root":{}}`, false},
		{"version 1.0", `{"version":1.0,"root":{}}`, false},
		{"version as a string", `{"version":"1","root":{}}`, false},
		{"no root", `{"version":1}`, false},
		{"no version", `{"root":{}}`, false},
		{"an array", `[{"version":1,"root":{}}]`, false},
		{"trailing data", `{"version":1,"root":{}} {}`, false},
		{"truncated", `{"version":1,"root":{"type":"dir`, false},
		{"not JSON", `version=1`, false},
		{"empty", ``, false},
		{"a second version", `{"version":1,"root":{},"Version":2}`, false},
		{"a 64 KiB target", `{"version":1,"root":{"type":"symlink","target":"` + strings.Repeat("t", 64<<10) + `"}}`, true},
		{"a 2 MiB string", `{"version":1,"root":{"type":"symlink","target":"` + strings.Repeat("t", 2<<20) + `"}}`, false},
		{"nested 5000 deep", `{"version":1,"root":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, false},
		{"entries of 10 MiB", `{"version":1,"root":{"type":"directory","entries":{` + strings.Repeat(`"a":{"type":"regular","size":1},`, 10<<20/32) + `"b":{}}}}`, true},
		// The decoder would buffer a run of spaces whole.
		{"2 MiB of spaces", `{"version":1,"root":{}` + strings.Repeat(" ", 2<<20) + `}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := memStore(t)
			repo := st.Repo("r")
			err := ingest.PutListing(ctx, repo, dataHash, strings.NewReader(tc.body), ingest.Limits{})
			got, gerr := st.Get(ctx, repo.Key(store.ListingFile(dataHash)))
			if tc.ok {
				if err != nil || gerr != nil || string(got) != tc.body {
					t.Fatalf("refused: %v (stored: %v)", err, gerr)
				}
				return
			}
			if !errors.Is(err, ingest.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			if !errors.Is(gerr, store.ErrNotFound) {
				t.Errorf("a refused listing is visible")
			}
		})
	}
	boom := errors.New("connection reset")
	st := memStore(t)
	err := ingest.PutListing(ctx, st.Repo("r"), dataHash, io.MultiReader(strings.NewReader(`{"version":1,"root":`), iotestErr{boom}), ingest.Limits{})
	if !errors.Is(err, boom) || errors.Is(err, ingest.ErrInvalid) {
		t.Fatalf("body error reported as %v", err)
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }
