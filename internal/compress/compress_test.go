package compress

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/nixrepo/nixrepo/internal/nixtest"
)

// payload returns n bytes of deterministic, moderately compressible data.
func payload(n int) []byte {
	rng := rand.New(rand.NewPCG(7, 9))
	words := []string{"nix", "store", "narinfo", "derivation", "sha256", "closure", "/bin/sh", "\x00\x01", "lib"}
	var b bytes.Buffer
	for b.Len() < n {
		if rng.IntN(8) == 0 {
			fmt.Fprintf(&b, "%x", rng.Uint64())
		} else {
			b.WriteString(words[rng.IntN(len(words))])
		}
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

// compressData compresses data with method, using the reference tool when
// it is installed (that is what Nix's libraries produce), else a Go encoder.
func compressData(t testing.TB, method string, data []byte) []byte {
	t.Helper()
	tool := map[string][]string{
		"xz":    {"xz", "-6", "-T1", "-c"},
		"bzip2": {"bzip2", "-c"},
		"zstd":  {"zstd", "-q", "-3", "-T1", "-c"},
	}[method]
	if tool != nil {
		if _, err := exec.LookPath(tool[0]); err == nil {
			cmd := exec.Command(tool[0], tool[1:]...)
			cmd.Stdin = bytes.NewReader(data)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v", tool[0], err)
			}
			return out
		}
	}
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch method {
	case "xz":
		w, err = xz.NewWriter(&buf)
	case "zstd":
		w, err = zstd.NewWriter(&buf)
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "br":
		w = brotli.NewWriter(&buf)
	case "bzip2":
		return bzip2Fixture(t, data)
	default:
		t.Fatalf("no encoder for %q", method)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bzip2Fixture is used when the bzip2 program is missing: the Go standard
// library has no bzip2 encoder. testdata/payload.bz2 is payload(300000)
// compressed by bzip2 1.0.8.
func bzip2Fixture(t testing.TB, data []byte) []byte {
	t.Helper()
	if !bytes.Equal(data, payload(len(data))) || len(data) != 300000 {
		nixtest.RequireTool(t, "bzip2") // no fixture for this payload
	}
	b, err := os.ReadFile("testdata/payload.bz2")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type variant struct {
	name   string
	method string
	open   func(io.Reader) io.ReadCloser
	// with opens the same decoder bounded by o.
	with func(io.Reader, Options) io.ReadCloser
}

func variants(t testing.TB) []variant {
	viaNewReader := func(method string) func(io.Reader) io.ReadCloser {
		return func(r io.Reader) io.ReadCloser {
			rc, err := NewReader(r, method)
			if err != nil {
				t.Fatal(err)
			}
			return rc
		}
	}
	viaOptions := func(method string) func(io.Reader, Options) io.ReadCloser {
		return func(r io.Reader, o Options) io.ReadCloser {
			rc, err := NewReaderOptions(r, method, o)
			if err != nil {
				t.Fatal(err)
			}
			return rc
		}
	}
	viaContent := func(enc string) func(io.Reader, Options) io.ReadCloser {
		return func(r io.Reader, o Options) io.ReadCloser {
			rc, err := NewContentReader(r, enc, o)
			if err != nil {
				t.Fatal(err)
			}
			return rc
		}
	}
	// SizeHint 1 selects the in-process xz decoder.
	xzGo := func(r io.Reader, o Options) io.ReadCloser { o.SizeHint = 1; return viaOptions("xz")(r, o) }
	vs := []variant{
		{"xz-go", "xz", xzGoDefault, xzGo},
		{"zstd", "zstd", viaNewReader("zstd"), viaOptions("zstd")},
		{"bzip2", "bzip2", viaNewReader("bzip2"), viaOptions("bzip2")},
		{"empty-means-bzip2", "bzip2", viaNewReader(""), viaOptions("")},
		{"gzip", "gzip", viaNewReader("gzip"), viaOptions("gzip")},
		{"br", "br", func(r io.Reader) io.ReadCloser { return viaContent("br")(r, Options{}) }, viaContent("br")},
	}
	if p := xzPath(); p != "" {
		vs = append(vs, variant{"xz-process", "xz", func(r io.Reader) io.ReadCloser { return newXZProcess(r, p, DefaultMaxMemory) },
			func(r io.Reader, o Options) io.ReadCloser { o.SizeHint = -1; return viaOptions("xz")(r, o) }})
	} else {
		t.Log("xz not installed: the subprocess decoder is not tested")
	}
	return vs
}

// noLeaks fails the test if goroutines started during it are still running
// shortly after it.
func noLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

func TestDecodersRoundTrip(t *testing.T) {
	noLeaks(t)
	data := payload(300000)
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			comp := compressData(t, v.method, data)
			for name, wrap := range map[string]func(io.Reader) io.Reader{
				"whole": func(r io.Reader) io.Reader { return r },
				"half":  iotest.HalfReader,
			} {
				rc := v.open(wrap(bytes.NewReader(comp)))
				got, err := io.ReadAll(iotest.HalfReader(rc))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("%s: decoded %d bytes, differ from the %d original", name, len(got), len(data))
				}
				if _, err := rc.Read(make([]byte, 1)); err != io.EOF {
					t.Errorf("%s: Read after EOF: %v", name, err)
				}
				if err := rc.Close(); err != nil {
					t.Errorf("%s: Close: %v", name, err)
				}
				if err := rc.Close(); err != nil {
					t.Errorf("%s: second Close: %v", name, err)
				}
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		rc, err := NewReader(bytes.NewReader(data), "none")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("none: %v", err)
		}
		rc.Close()
	})
}

// TestConcatenatedXZAccepted checks that both xz decoders accept what xz itself
// accepts: concatenated streams and stream padding.
func TestConcatenatedXZAccepted(t *testing.T) {
	noLeaks(t)
	a, b := payload(1000), payload(2000)
	comp := append(compressData(t, "xz", a), 0, 0, 0, 0)
	comp = append(comp, compressData(t, "xz", b)...)
	for _, v := range variants(t) {
		if v.method != "xz" {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			rc := v.open(bytes.NewReader(comp))
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, append(bytes.Clone(a), b...)) {
				t.Fatalf("err %v, %d bytes", err, len(got))
			}
		})
	}
}

func TestCorruptInputIsStickyErrCorrupt(t *testing.T) {
	noLeaks(t)
	data := payload(300000)
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	for _, v := range variants(t) {
		comp := compressData(t, v.method, data)
		flipped := bytes.Clone(comp)
		flipped[len(flipped)/2] ^= 0x55
		cases := []struct {
			name      string
			in        []byte
			truncated bool // the error must also wrap io.ErrUnexpectedEOF
		}{
			{"empty", nil, false},
			{"truncated 10", comp[:10], false},
			{"truncated half", comp[:len(comp)/2], true},
			{"truncated minus 1", comp[:len(comp)-1], false},
			{"garbage", garbage, false},
			{"trailing garbage", append(bytes.Clone(comp), "garbage!"...), false},
			{"flipped byte", flipped, false},
		}
		for _, tc := range cases {
			t.Run(v.name+"/"+tc.name, func(t *testing.T) {
				if v.method == "br" && tc.name == "flipped byte" {
					t.Skip("brotli streams carry no checksum: a changed byte can decode to other data")
				}
				rc := v.open(bytes.NewReader(tc.in))
				defer rc.Close()
				_, err := io.ReadAll(rc)
				if err == nil {
					t.Fatal("no error: corrupt input decoded as a clean stream")
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("error %q does not wrap ErrCorrupt", err)
				}
				if tc.truncated && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("error %q does not wrap io.ErrUnexpectedEOF", err)
				}
				want := "compress: truncated or corrupt " + v.method + " data: "
				if !strings.HasPrefix(err.Error(), want) {
					t.Errorf("error %q does not start with %q", err, want)
				}
				if _, err2 := rc.Read(make([]byte, 10)); err2 == nil || err2 == io.EOF {
					t.Errorf("error is not sticky: second Read gave %v", err2)
				}
				t.Log(err)
			})
		}
	}
}

func TestXZProcessMessage(t *testing.T) {
	nixtest.RequireTool(t, "xz") // the xz program decoder
	p := xzPath()
	comp := compressData(t, "xz", payload(100000))
	rc := newXZProcess(bytes.NewReader(comp[:len(comp)/2]), p, DefaultMaxMemory)
	defer rc.Close()
	_, err := io.ReadAll(rc)
	if want := "compress: truncated or corrupt xz data: xz: (stdin): Unexpected end of input"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestSourceErrorPassesThrough(t *testing.T) {
	noLeaks(t)
	boom := errors.New("connection reset by peer")
	data := payload(300000)
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			comp := compressData(t, v.method, data)
			rc := v.open(io.MultiReader(bytes.NewReader(comp[:len(comp)/2]), iotest.ErrReader(boom)))
			defer rc.Close()
			_, err := io.ReadAll(rc)
			if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want the source's error and not ErrCorrupt", err)
			}
			if want := "compress: reading " + v.method + " input: "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
		})
	}
}

func TestUnsupportedMethodIsErrUnsupported(t *testing.T) {
	for _, m := range []string{"lz4", "br", "lzip", "lzma", "compress", "XZ", "zst", "bz2"} {
		rc, err := NewReader(strings.NewReader("x"), m)
		if rc != nil || !errors.Is(err, ErrUnsupported) {
			t.Fatalf("%q: got %v, %v", m, rc, err)
		}
		want := fmt.Sprintf("compress: unsupported compression method %q (supported: none, xz, zstd, bzip2, gzip)", m)
		if err.Error() != want {
			t.Errorf("got %q, want %q", err, want)
		}
	}
}

func TestDecoderChoiceBySize(t *testing.T) {
	nixtest.RequireTool(t, "xz") // the xz program decoder
	r := strings.NewReader("")
	choose := func(size int64) string {
		rc, err := NewReaderSize(r, "xz", size)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		return fmt.Sprintf("%T", rc)
	}
	for _, tc := range []struct {
		size int64
		want string
	}{
		{-1, "*compress.xzProcess"},
		{XZSubprocessMinSize, "*compress.xzProcess"},
		{XZSubprocessMinSize - 1, "*compress.goDecoder"},
		{0, "*compress.xzProcess"}, // zero means unknown, as in Options.SizeHint
		{1, "*compress.goDecoder"},
	} {
		if got := choose(tc.size); got != tc.want {
			t.Errorf("size %d: %s, want %s", tc.size, got, tc.want)
		}
	}
	saved := xzPath
	t.Cleanup(func() { xzPath = saved })
	xzPath = func() string { return "" }
	if got := choose(-1); got != "*compress.goDecoder" {
		t.Errorf("without xz: %s", got)
	}
}

// TestXZProcessLifecycle checks that the xz process is reaped and no
// goroutine survives, whatever the consumer does.
func TestXZProcessLifecycle(t *testing.T) {
	nixtest.RequireTool(t, "xz") // the xz program decoder
	path := xzPath()
	data := payload(4 << 20)
	comp := compressData(t, "xz", data)

	t.Run("early close", func(t *testing.T) {
		noLeaks(t)
		for range 20 {
			p := newXZProcess(bytes.NewReader(comp), path, DefaultMaxMemory)
			if _, err := io.ReadFull(p, make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if p.cmd.ProcessState == nil {
				t.Fatal("process not reaped")
			}
			if _, err := p.Read(make([]byte, 10)); err == nil || err == io.EOF {
				t.Fatalf("Read after Close: %v", err)
			}
		}
	})
	t.Run("close without read", func(t *testing.T) {
		noLeaks(t)
		p := newXZProcess(bytes.NewReader(comp), path, DefaultMaxMemory)
		p.Close()
		if p.cmd != nil {
			t.Fatal("process started without a Read")
		}
		if _, err := p.Read(make([]byte, 10)); !errors.Is(err, errClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	})
	t.Run("file input", func(t *testing.T) {
		noLeaks(t)
		f, err := os.Create(filepath.Join(t.TempDir(), "x.xz"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(comp); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		p := newXZProcess(f, path, DefaultMaxMemory)
		got, err := io.ReadAll(p)
		p.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("err %v, %d bytes", err, len(got))
		}
		if p.feedDone != nil {
			t.Error("an *os.File input should be handed to xz directly")
		}
	})
	t.Run("close during blocked read", func(t *testing.T) {
		noLeaks(t)
		pr, pw := io.Pipe()
		fed := make(chan struct{})
		go func() {
			// Half of the input, then stall until the test gives up. The
			// write returns once the feeding goroutine has read it: the
			// process has started.
			pw.Write(comp[:len(comp)/2])
			close(fed)
		}()
		p := newXZProcess(pr, path, DefaultMaxMemory)
		readErr := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, p)
			readErr <- err
		}()
		select {
		case <-fed:
		case <-time.After(30 * time.Second):
			t.Fatal("the xz process never read its input")
		}
		time.Sleep(100 * time.Millisecond) // let the reader block on the output
		closed := make(chan struct{})
		go func() {
			p.Close()
			close(closed)
		}()
		select {
		case err := <-readErr:
			if !errors.Is(err, errClosed) {
				t.Errorf("blocked Read returned %v, want errClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not unblock Read")
		}
		// The feeding goroutine is blocked reading the stalled input, so
		// Close waits for it: release the input.
		select {
		case <-closed:
			t.Fatal("Close returned while the feeding goroutine was still reading")
		case <-time.After(100 * time.Millisecond):
		}
		pr.CloseWithError(errors.New("stop"))
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
		if p.cmd.ProcessState == nil {
			t.Fatal("process not reaped")
		}
	})
}

func TestGoDecoderReadAfterCloseFails(t *testing.T) {
	noLeaks(t)
	data := payload(1 << 20)
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			rc := v.open(bytes.NewReader(compressData(t, v.method, data)))
			if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
			rc.Close()
			if _, err := rc.Read(make([]byte, 10)); !errors.Is(err, errClosed) {
				t.Fatalf("Read after Close: %v", err)
			}
		})
	}
}

// TestEveryTruncationFailsToDecode cuts small compressed streams at every offset: no
// prefix may decode cleanly. The xz input has several blocks, since
// ulikunitz/xz on its own accepts a cut at a block boundary.
func TestEveryTruncationFailsToDecode(t *testing.T) {
	noLeaks(t)
	data := payload(2000)
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			comp := compressData(t, v.method, data)
			if v.method == "xz" {
				if _, err := exec.LookPath("xz"); err == nil {
					cmd := exec.Command("xz", "-0", "-T1", "--block-size=500", "-c")
					cmd.Stdin = bytes.NewReader(data)
					out, err := cmd.Output()
					if err != nil {
						t.Fatal(err)
					}
					comp = out
				}
			}
			for n := range len(comp) {
				if v.name == "xz-process" && n%5 != 0 && n < len(comp)-24 {
					continue // 5 ms per process: every 5th cut, and the last 24
				}
				rc := v.open(bytes.NewReader(comp[:n]))
				_, err := io.ReadAll(rc)
				rc.Close()
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("prefix of %d/%d bytes: got %v, want ErrCorrupt", n, len(comp), err)
				}
			}
		})
	}
}

// withXZDict rewrites the LZMA2 dictionary size of the first block of an
// xz -6 file (header at offset 12: size, flags, filter 0x21, 1, props) and
// fixes the header CRC32.
func withXZDict(t *testing.T, comp []byte, props byte) []byte {
	t.Helper()
	out := bytes.Clone(comp)
	hsize := (int(out[12]) + 1) * 4
	if out[14] != 0x21 || out[15] != 1 {
		t.Fatalf("unexpected block header % x", out[12:12+hsize])
	}
	out[16] = props
	binary.LittleEndian.PutUint32(out[12+hsize-4:], crc32.ChecksumIEEE(out[12:12+hsize-4]))
	return out
}

func TestXZDictionaryOverLimitIsErrMemoryLimit(t *testing.T) {
	noLeaks(t)
	nixtest.RequireTool(t, "xz") // makes the xz -6 input
	data := payload(10000)
	comp := compressData(t, "xz", data)
	for _, tc := range []struct {
		props byte
		ok    bool
	}{
		{0x16, true},  // 8 MiB, xz -6
		{0x1c, true},  // 64 MiB, xz -9
		{0x1e, true},  // 128 MiB
		{0x1f, false}, // 192 MiB
		{40, false},   // 4 GiB - 1
	} {
		in := withXZDict(t, comp, tc.props)
		for _, v := range variants(t) {
			if v.method != "xz" {
				continue
			}
			got, err := decodeAll(v.open(bytes.NewReader(in)))
			if tc.ok && (err != nil || !bytes.Equal(got, data)) {
				t.Errorf("props %#x, %s: %v", tc.props, v.name, err)
			}
			if !tc.ok && (!errors.Is(err, ErrMemoryLimit) || errors.Is(err, ErrCorrupt)) {
				t.Errorf("props %#x, %s: got %v, want ErrMemoryLimit", tc.props, v.name, err)
			}
			if err != nil {
				t.Logf("props %#x, %s: %v", tc.props, v.name, err)
			}
		}
	}
}

// xzGoDefault is the in-process xz decoder with the default dictionary
// limit.
func xzGoDefault(r io.Reader) io.ReadCloser { return newXZGo(r, DefaultMaxMemory) }
