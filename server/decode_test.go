package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/nixrepo/nixrepo/internal/memtest"
	"github.com/nixrepo/nixrepo/internal/nar/nartest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// xzDictBomb is a 56-byte xz stream whose block header declares a
// dictionary of (2|props&1) << (props/2+11) bytes (props 37: 1.5 GiB) and
// whose data is one byte: stream header, block header, an uncompressed
// LZMA2 chunk, the CRC32 check, index and footer.
func xzDictBomb(props byte) []byte {
	var b bytes.Buffer
	flags := []byte{0, 0x01}
	b.Write([]byte{0xfd, '7', 'z', 'X', 'Z', 0})
	b.Write(flags)
	binary.Write(&b, binary.LittleEndian, crc32.ChecksumIEEE(flags))
	hdr := []byte{2, 0, 0x21, 1, props, 0, 0, 0} // (2+1)*4 bytes with the CRC32
	b.Write(hdr)
	binary.Write(&b, binary.LittleEndian, crc32.ChecksumIEEE(hdr))
	data := []byte{0x01, 0x00, 0x00, 'x', 0x00}
	b.Write(data)
	b.Write(make([]byte, (4-(len(hdr)+4+len(data))%4)%4))
	binary.Write(&b, binary.LittleEndian, crc32.ChecksumIEEE([]byte("x")))
	index := []byte{0, 1, byte(len(hdr) + 4 + len(data) + 4), 1}
	b.Write(index)
	binary.Write(&b, binary.LittleEndian, crc32.ChecksumIEEE(index))
	footer := append(binary.LittleEndian.AppendUint32(nil, uint32((len(index)+4)/4-1)), flags...)
	binary.Write(&b, binary.LittleEndian, crc32.ChecksumIEEE(footer))
	b.Write(footer)
	b.WriteString("YZ")
	return b.Bytes()
}

// gzipBomb is n concatenated gzip members of 1 MiB of zeros each (about
// 1 KiB each): a gzip body that decodes to n MiB.
func gzipBomb(n int) []byte {
	var one bytes.Buffer
	w, _ := gzip.NewWriterLevel(&one, gzip.BestCompression)
	w.Write(make([]byte, 1<<20))
	w.Close()
	return bytes.Repeat(one.Bytes(), n)
}

// listingBomb is a gzip body decoding to a listing with n MiB of
// directory entries.
func listingBomb(n int) []byte {
	member := func(b []byte) []byte {
		var buf bytes.Buffer
		w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	out := member([]byte(`{"version":1,"root":{"type":"directory","entries":{`))
	out = append(out, bytes.Repeat(member(bytes.Repeat([]byte(`"a":{"type":"regular","size":1},`), 1<<20/32)), n)...)
	return append(out, member([]byte(`"b":{}}}}`))...)
}

// TestPutNarInfoXZDictionaryBomb: a narinfo body with Content-Encoding xz
// whose block header declares a 1.5 GiB dictionary is refused with 413
// naming the 16 MiB limit, at once, without the heap growing; the same
// stream with an 8 MiB dictionary decodes (and, not being a narinfo, is a
// 400).
func TestPutNarInfoXZDictionaryBomb(t *testing.T) {
	e := newEnv(t, nil, nil)
	if r := e.put("/api/nix/r/"+dataNar, writer, sample(t, dataNar)); r.status != 200 {
		t.Fatal(r)
	}
	var r resp
	start := time.Now()
	peak := memtest.PeakHeap(func() {
		r = e.do(http.MethodPut, "/api/nix/r/"+dataHash+".narinfo", writer, xzDictBomb(37), map[string]string{"Content-Encoding": "xz"})
	})
	wantStatus(t, "narinfo with a 1.5 GiB xz dictionary", r, http.StatusRequestEntityTooLarge)
	if !strings.Contains(string(r.body), "16 MiB") {
		t.Errorf("reason %q does not name the limit", r.body)
	}
	if peak > 16<<20 {
		t.Errorf("heap grew by %d MiB refusing a %d-byte body", peak>>20, len(xzDictBomb(37)))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	t.Logf("%d %s; heap +%d KiB", r.status, bytes.TrimSpace(r.body), peak>>10)
	r = e.do(http.MethodPut, "/api/nix/r/"+dataHash+".narinfo", writer, xzDictBomb(22), map[string]string{"Content-Encoding": "xz"})
	wantStatus(t, `xz body "x" with an 8 MiB dictionary`, r, http.StatusBadRequest)
	checkVisible(t, e.st, "r", []string{dataNar}, []string{dataNar})
}

// TestPutEncodedBodyLimits: every encoded small upload is bounded after
// decoding (413 naming the limit), its window is bounded (413), corrupt
// encodings are 400; never a 5xx; nothing visible after a refusal.
func TestPutEncodedBodyLimits(t *testing.T) {
	zstdWindow := func(window int, data []byte) []byte {
		var buf bytes.Buffer
		w, _ := zstd.NewWriter(&buf, zstd.WithWindowSize(window), zstd.WithSingleSegment(false), zstd.WithEncoderConcurrency(1))
		w.Write(data)
		w.Close()
		return buf.Bytes()
	}
	for _, tc := range []struct {
		name, rel, enc string
		body           []byte
		status         int
		reason         string
		maxObject      int64 // MaxObjectSize, when not the default
	}{
		{"narinfo decoding to 2 MiB", dataHash + ".narinfo", "gzip", gzipBomb(2), 413, "limit of 1 MiB", 0},
		{"realisation decoding to 2 MiB", realisationC, "gzip", gzipBomb(2), 413, "limit of 1 MiB", 0},
		{"nix-cache-info decoding to 1 MiB", "nix-cache-info", "gzip", gzipBomb(1), 413, "limit of 65536 bytes", 0},
		// MaxObjectSize lowers the listing limit (256 MiB) to keep the
		// test short.
		{"listing decoding past MaxObjectSize", libHash + ".ls", "gzip", listingBomb(10), 413, "limit of 8 MiB", 8 << 20},
		{"listing within MaxObjectSize", libHash + ".ls", "gzip", listingBomb(7), 200, "", 8 << 20},
		{"log with a 32 MiB zstd window", "log/" + libDrv, "zstd", zstdWindow(32<<20, make([]byte, 33<<20)), 413, "limit of 16 MiB", 0},
		{"corrupt gzip log", "log/" + libDrv, "gzip", []byte("not gzip at all"), 400, "corrupt gzip", 0},
		{"truncated gzip listing", libHash + ".ls", "gzip", listingBomb(1)[:1000], 400, "corrupt gzip", 0},
		{"unsupported encoding", "log/" + libDrv, "lz4", []byte("x"), 400, "Content-Encoding", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := defaultOptions()
			if tc.maxObject > 0 {
				o.MaxObjectSize = tc.maxObject
			}
			e := newEnv(t, fileStore(t), o)
			before := snapshot(t, e.st)
			r := e.do(http.MethodPut, "/api/nix/r/"+tc.rel, writer, tc.body, map[string]string{"Content-Encoding": tc.enc})
			wantStatus(t, tc.name, r, tc.status)
			if !strings.Contains(string(r.body), tc.reason) {
				t.Errorf("reason %q does not contain %q", r.body, tc.reason)
			}
			if tc.status != 200 {
				sameSnapshot(t, tc.name, before, snapshot(t, e.st))
			}
		})
	}
}

// TestPutLogGzipBombStreamed: a 1 MiB gzip log that decodes to 1 GiB is
// refused with 413 at the 256 MiB limit while the heap stays flat (the
// log is streamed to the bucket, never held); a log under the limit is
// stored and served decoded.
func TestPutLogGzipBombStreamed(t *testing.T) {
	e := newEnv(t, fileStore(t), nil)
	before := snapshot(t, e.st)
	var r resp
	peak := memtest.PeakHeap(func() {
		r = e.do(http.MethodPut, "/api/nix/r/log/"+libDrv, writer, gzipBomb(1024), map[string]string{"Content-Encoding": "gzip"})
	})
	wantStatus(t, "gzip log decoding to 1 GiB", r, http.StatusRequestEntityTooLarge)
	if !strings.Contains(string(r.body), "limit of 256 MiB") {
		t.Errorf("reason %q does not name the limit", r.body)
	}
	// The request body itself (1 MiB) is held by the client.
	if peak > 32<<20 {
		t.Errorf("heap grew by %d MiB decoding the log", peak>>20)
	}
	sameSnapshot(t, "refused log", before, snapshot(t, e.st))
	t.Logf("%d %s; heap +%d MiB", r.status, bytes.TrimSpace(r.body), peak>>20)

	r = e.do(http.MethodPut, "/api/nix/r/log/"+libDrv, writer, gzipBomb(8), map[string]string{"Content-Encoding": "gzip"})
	wantStatus(t, "gzip log of 8 MiB", r, http.StatusOK)
	if g := e.get("/api/nix/r/log/"+libDrv, reader); g.status != 200 || !bytes.Equal(g.body, make([]byte, 8<<20)) {
		t.Errorf("log served as %d, %d bytes", g.status, len(g.body))
	}
}

// TestPutLogIsWriteOnce: a log (or realisation) is written once: the same
// decoded bytes again are accepted, whatever their encoding; different
// bytes are 409 and leave the first.
func TestPutLogIsWriteOnce(t *testing.T) {
	e := newEnv(t, nil, nil)
	logText := []byte(strings.Repeat("building greeting-lib\n", 1000))
	put := func(body []byte, enc string) resp {
		return e.do(http.MethodPut, "/api/nix/r/log/"+libDrv, writer, body, map[string]string{"Content-Encoding": enc})
	}
	wantStatus(t, "first log", put(logText, "identity"), http.StatusOK)
	wantStatus(t, "same log, br", put(encodeBody(t, "br", logText), "br"), http.StatusOK)
	wantStatus(t, "same log, zstd", put(encodeBody(t, "zstd", logText), "zstd"), http.StatusOK)
	r := put(append(bytes.Clone(logText), '!'), "")
	wantStatus(t, "different log", r, http.StatusConflict)
	if g := e.get("/api/nix/r/log/"+libDrv, reader); !bytes.Equal(g.body, logText) {
		t.Errorf("the first log was replaced: %d bytes", len(g.body))
	}
	real := []byte(`{"dependentRealisations":{},"id":"sha256:cccc!dev","outPath":"` + libHash + `-greeting-lib-0.3","signatures":[]}`)
	wantStatus(t, "realisation", e.put("/api/nix/r/"+realisationC, writer, real), http.StatusOK)
	wantStatus(t, "same realisation", e.put("/api/nix/r/"+realisationC, writer, real), http.StatusOK)
	wantStatus(t, "other realisation", e.put("/api/nix/r/"+realisationC, writer, bytes.Replace(real, []byte("dev"), []byte("out"), 1)), http.StatusConflict)
}

// TestPutNarLongSymlinksBoundedListing: a NAR of 4000 symlinks with
// 64 KiB targets (262 MB, a few hundred KiB as zstd) used to grow the
// server by its 262 MB listing and write it into nar-meta. Now the
// upload is accepted with the heap bounded, nar-meta is small and records
// that the listing was skipped, the narinfo is accepted and no listing is
// served, not even the one the client uploaded first.
func TestPutNarLongSymlinksBoundedListing(t *testing.T) {
	var nar bytes.Buffer
	zw, _ := zstd.NewWriter(&nar, zstd.WithEncoderConcurrency(1))
	h := sha256.New()
	narSize, err := io.Copy(zw, io.TeeReader(nartest.Symlinks(4000, 64<<10), h))
	if err != nil {
		t.Fatal(err)
	}
	zw.Close()
	file := nar.Bytes()
	fsum := sha256.Sum256(file)
	fh := nix.SHA256(fsum[:])
	rel := store.NarFile(fh, "zstd")

	e := newEnv(t, nil, nil)
	const hash = "0000000000000000000000000000000a"
	ls := []byte(`{"version":1,"root":{"type":"directory","entries":{}}}`)
	wantStatus(t, "client listing", e.put("/api/nix/r/"+hash+".ls", writer, ls), http.StatusOK)
	var r resp
	peak := memtest.PeakHeap(func() { r = e.put("/api/nix/r/"+rel, writer, file) })
	wantStatus(t, fmt.Sprintf("NAR of %d bytes as %d bytes of zstd", narSize, len(file)), r, http.StatusOK)
	if peak > 96<<20 {
		t.Errorf("heap grew by %d MiB for a %d-byte upload", peak>>20, len(file))
	}
	meta, err := e.st.Get(context.Background(), e.st.Repo("r").NarMetaKey(fh.Nix32()))
	if err != nil {
		t.Fatal(err)
	}
	if len(meta) > 1024 || !bytes.Contains(meta, []byte(`"listingSkipped":true`)) {
		t.Errorf("nar-meta is %d bytes: %.300s", len(meta), meta)
	}
	t.Logf("NAR %d MB as %d KiB: heap +%d MiB, nar-meta %d bytes", narSize/1e6, len(file)>>10, peak>>20, len(meta))

	ni := fmt.Sprintf("StorePath: /nix/store/%s-symlinks\nURL: %s\nCompression: zstd\nFileHash: %s\nFileSize: %d\nNarHash: %s\nNarSize: %d\nReferences: \n",
		hash, rel, fh, len(file), nix.SHA256(h.Sum(nil)), narSize)
	wantStatus(t, "narinfo", e.put("/api/nix/r/"+hash+".narinfo", writer, []byte(ni)), http.StatusOK)
	if g := e.get("/api/nix/r/"+hash+".ls", reader); g.status != http.StatusNotFound {
		t.Errorf("listing served: %s", g)
	}
	if _, err := e.st.Get(context.Background(), e.st.Repo("r").Key(store.ListingFile(hash))); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("listing object: %v", err)
	}
}

// TestPutNarPastMaxNarSize: a NAR file that decodes to more than
// MaxNarSize is refused with 413 naming the limit, and nothing is
// visible.
func TestPutNarPastMaxNarSize(t *testing.T) {
	var nar bytes.Buffer
	zw, _ := zstd.NewWriter(&nar, zstd.WithEncoderConcurrency(1))
	io.Copy(zw, nartest.Symlinks(100, 64<<10))
	zw.Close()
	fsum := sha256.Sum256(nar.Bytes())
	rel := store.NarFile(nix.SHA256(fsum[:]), "zstd")
	o := defaultOptions()
	o.MaxNarSize = 1 << 20
	e := newEnv(t, nil, o)
	before := snapshot(t, e.st)
	r := e.put("/api/nix/r/"+rel, writer, nar.Bytes())
	wantStatus(t, "NAR of 6.5 MB with MaxNarSize 1 MiB", r, http.StatusRequestEntityTooLarge)
	if !strings.Contains(string(r.body), "1048576") {
		t.Errorf("reason %q does not name the limit", r.body)
	}
	sameSnapshot(t, "refused NAR", before, snapshot(t, e.st))
}
