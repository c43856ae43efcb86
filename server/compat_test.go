package server_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/nixtest"
	"github.com/nixrepo/nixrepo/internal/store"
)

// rawNar is a sample path's uncompressed NAR.
func rawNar(t testing.TB, rel string) []byte {
	t.Helper()
	r, err := xz.NewReader(bytes.NewReader(sample(t, rel)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recompressed returns greeting-data's NAR compressed with method and the
// narinfo describing it (same store path and NarHash, other file).
func recompressed(t testing.TB, method string) (rel string, file []byte, narinfo []byte) {
	t.Helper()
	raw := rawNar(t, dataNar)
	switch method {
	case "none":
		file = raw
	case "xz":
		file = sample(t, dataNar)
	case "zstd":
		var b bytes.Buffer
		w, _ := zstd.NewWriter(&b)
		w.Write(raw)
		w.Close()
		file = b.Bytes()
	case "bzip2":
		cmd := exec.Command(nixtest.RequireTool(t, "bzip2"), "-c")
		cmd.Stdin = bytes.NewReader(raw)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bzip2: %v", err)
		}
		file = out
	case "gzip":
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(raw)
		w.Close()
		file = b.Bytes()
	default:
		t.Fatalf("method %s", method)
	}
	sum := sha256.Sum256(file)
	fh := nix.SHA256(sum[:])
	ni := sampleNarInfo(t, dataHash)
	ni.URL = store.NarFile(fh, method)
	ni.Compression = method
	ni.FileHash = fh
	ni.FileSize = uint64(len(file))
	return ni.URL, file, ni.Bytes()
}

// TestPutEveryDocumentedCompressionServes: the NAR compressions the server documents (none, xz,
// zstd, bzip2) upload and serve.
func TestPutEveryDocumentedCompressionServes(t *testing.T) {
	for _, method := range []string{"none", "xz", "zstd", "bzip2"} {
		t.Run(method, func(t *testing.T) {
			rel, file, narinfo := recompressed(t, method)
			e := newEnv(t, nil, nil)
			if r := e.put("/api/nix/r/"+rel, writer, file); r.status != 200 {
				t.Fatalf("PUT %s: %s", rel, r)
			}
			if r := e.put("/api/nix/r/"+dataHash+".narinfo", writer, narinfo); r.status != 200 {
				t.Fatalf("PUT narinfo: %s", r)
			}
			g := e.get("/api/nix/r/"+dataHash+".narinfo", reader)
			ni, err := nix.ParseNarInfo(g.body)
			if err != nil || ni.Compression != method || ni.URL != rel {
				t.Errorf("served narinfo: %v\n%s", err, g.body)
			}
			if n := e.get("/api/nix/r/"+rel, reader); n.status != 200 || !bytes.Equal(n.body, file) {
				t.Errorf("GET %s: %d", rel, n.status)
			}
			checkVisible(t, e.st, "r", []string{rel, dataHash + ".narinfo", dataHash + ".ls"}, []string{rel})
		})
	}
}

// TestPutGzipNarNamedNarIsAccepted: `nix copy --to 'http://…?compression=gzip'`
// names a gzip NAR file plain ".nar" (protocols doc §1.2) and uploads it
// before its narinfo: the server tells gzip from an uncompressed NAR by its
// bytes, and the narinfo must say gzip (one that says none is refused, or
// Nix would read gzip bytes as a NAR).
func TestPutGzipNarNamedNarIsAccepted(t *testing.T) {
	rel, file, narinfo := recompressed(t, "gzip")
	if !strings.HasSuffix(rel, ".nar") {
		t.Fatalf("Nix names a gzip NAR %s", rel)
	}
	e := newEnv(t, nil, nil)
	if r := e.put("/api/nix/r/"+rel, writer, file); r.status != 200 {
		t.Fatalf("PUT gzip NAR named .nar: %s", r)
	}
	lie := bytes.Replace(narinfo, []byte("Compression: gzip"), []byte("Compression: none"), 1)
	r := e.put("/api/nix/r/"+dataHash+".narinfo", writer, lie)
	wantStatus(t, "narinfo saying none for a gzip NAR", r, http.StatusUnprocessableEntity)
	if r := e.put("/api/nix/r/"+dataHash+".narinfo", writer, narinfo); r.status != 200 {
		t.Fatalf("PUT narinfo: %s", r)
	}
	g := e.get("/api/nix/r/"+dataHash+".narinfo", reader)
	if ni, err := nix.ParseNarInfo(g.body); err != nil || ni.Compression != "gzip" || ni.URL != rel {
		t.Errorf("served narinfo: %v\n%s", err, g.body)
	}
	if n := e.get("/api/nix/r/"+rel, reader); n.status != 200 || !bytes.Equal(n.body, file) {
		t.Errorf("GET %s: %d", rel, n.status)
	}
	checkVisible(t, e.st, "r", []string{rel, dataHash + ".narinfo", dataHash + ".ls"}, []string{rel})
	// The other compressions Nix can write are refused, with the message
	// every entry point gives for them.
	for method, ext := range map[string]string{"lz4": ".lz4", "lzip": ".lzip", "br": ".br"} {
		r := e.put("/api/nix/r/"+strings.TrimSuffix(rel, ".nar")+".nar"+ext, writer, file)
		wantStatus(t, "NAR "+ext, r, http.StatusBadRequest)
		if want := fmt.Sprintf("unsupported compression method %q (supported: none, xz, zstd, bzip2, gzip)", method); !strings.Contains(string(r.body), want) {
			t.Errorf("PUT of a .nar%s: %q lacks %q", ext, r.body, want)
		}
	}
}

// TestPutExpectContinueRefusesBefore100: curl (and so Nix) sends "Expect: 100-continue"
// with every PUT. An upload that will be refused from its headers is
// answered at once, without 100; an accepted one gets 100 then 200.
func TestPutExpectContinueRefusesBefore100(t *testing.T) {
	o := defaultOptions()
	o.MaxObjectSize = 420
	e := newEnv(t, nil, o)
	exchange := func(c cred, rel string, body []byte) (sawContinue bool, status int, text string) {
		t.Helper()
		conn, err := net.Dial("tcp", e.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "PUT /api/nix/r/%s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", rel, c.header(), len(body))
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("PUT %s: %v", rel, err)
		}
		if res.StatusCode == http.StatusContinue {
			sawContinue = true
			conn.Write(body)
			res, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("PUT %s after 100: %v", rel, err)
			}
		}
		b, _ := io.ReadAll(res.Body)
		checkPutStatus(t, rel, res.StatusCode)
		return sawContinue, res.StatusCode, string(b)
	}
	for _, c := range []struct {
		name   string
		who    cred
		rel    string
		body   []byte
		status int
		cont   bool
	}{
		{"anonymous", anonymous, dataNar, sample(t, dataNar), 401, false},
		{"read token", reader, dataNar, sample(t, dataNar), 403, false},
		{"unknown object", writer, "nar/x.nar", []byte("x"), 400, false},
		{"too large", writer, libNar, sample(t, libNar), 413, false},
		{"accepted NAR", writer, dataNar, sample(t, dataNar), 200, true},
		{"accepted narinfo", writer, dataHash + ".narinfo", sample(t, dataHash+".narinfo"), 200, true},
	} {
		cont, status, text := exchange(c.who, c.rel, c.body)
		if status != c.status || cont != c.cont {
			t.Errorf("%s: got 100-continue=%v %d %q, want 100-continue=%v %d", c.name, cont, status, text, c.cont, c.status)
		}
	}
}

// TestListingUploadKeepsComputedListing: layout.md says R/<hash>.ls is "the NAR listing,
// byte-identical to what Nix writes". Once a path is accepted, the server
// has written the listing it computed from the NAR; a later .ls upload of
// arbitrary JSON must not replace it.
func TestListingUploadKeepsComputedListing(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.uploadSample(dataHash)
	computed := e.get("/api/nix/r/"+dataHash+".ls", reader).body
	if !bytes.Contains(computed, []byte(`"version":1`)) {
		t.Fatalf("computed listing: %q", computed)
	}
	r := e.put("/api/nix/r/"+dataHash+".ls", writer, []byte(`{"bogus":true}`))
	after := e.get("/api/nix/r/"+dataHash+".ls", reader).body
	if !bytes.Equal(after, computed) {
		t.Errorf("BUG: PUT %s.ls answered %d and replaced the listing computed from the NAR with %q (any JSON is stored, overwriting; see report)", dataHash, r.status, after)
	}
}
