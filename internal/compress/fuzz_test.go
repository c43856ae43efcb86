package compress

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/nixrepo/nixrepo/internal/nixtest"
)

// xzRegressions are inputs on which the two xz decoders once disagreed.
var xzRegressions = [][]byte{
	// A stream header alone: ulikunitz/xz v0.5.17 returns a clean EOF.
	[]byte("\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4\x46"),
	// A stream header, the start of a block header and a copied footer.
	[]byte("\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4\x460\x1f\xb6\xf3}\x01\x00\x00\x00\x00\x04YZ"),
}

func decodeAll(rc io.ReadCloser) ([]byte, error) {
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 1<<20))
}

// FuzzXZGo fuzzes the in-process xz decoder: it must not panic, must
// classify every failure as corrupt data or a window above the limit, and whatever it accepts must
// decode the same way twice. (The comparison with the xz program is in
// TestXZDecodersAgree: coverage-instrumented fuzzing workers hang in
// os/exec, because the instrumented fork/exec child code runs after vfork.)
func FuzzXZGo(f *testing.F) {
	// No xz program here: workers run this setup too, and must not exec.
	liblzma, _ := hex.DecodeString("fd377a585a000004e6d6b4460200210116000000742fe5a3e0002100185d00341949ee8def8c6a99d2d187989a081ac07bfc884e0000000036af0708e83d8d3b000134223807cc4e1fb6f37d010000000004595a")
	f.Add(liblzma) // printf 'hello, nix store\nhello, nix store\n' | xz -6
	f.Add(append(append(bytes.Clone(liblzma), 0, 0, 0, 0), liblzma...))
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		f.Fatal(err)
	}
	w.Write(payload(3000))
	w.Close()
	f.Add(buf.Bytes())
	for _, in := range xzRegressions {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := decodeAll(newXZGo(bytes.NewReader(data), DefaultMaxMemory))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMemoryLimit) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrMemoryLimit", err)
			}
			return
		}
		out2, err := decodeAll(newXZGo(bytes.NewReader(data), DefaultMaxMemory))
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("second decode differs: %v", err)
		}
	})
}

// TestXZDecodersAgree is a differential test: for mutations of valid xz
// files (bit flips, cuts, insertions, copied pieces) both decoders must
// fail, or both succeed with the same output.
func TestXZDecodersAgree(t *testing.T) {
	noLeaks(t)
	nixtest.RequireTool(t, "xz") // the xz program decoder
	p := xzPath()
	seeds := [][]byte{
		compressData(t, "xz", payload(3000)),
		compressData(t, "xz", nil),
	}
	seeds = append(seeds, append(append(bytes.Clone(seeds[0]), 0, 0, 0, 0), seeds[1]...))
	inputs := append([][]byte{}, xzRegressions...)
	inputs = append(inputs, seeds...)
	rng := rand.New(rand.NewPCG(11, 12))
	n := 600
	if testing.Short() {
		n = 100
	}
	for range n {
		in := bytes.Clone(seeds[rng.IntN(len(seeds))])
		for range 1 + rng.IntN(3) {
			switch k := rng.IntN(5); {
			case k == 0 && len(in) > 0: // flip a bit
				in[rng.IntN(len(in))] ^= 1 << rng.IntN(8)
			case k == 1 && len(in) > 0: // cut
				in = in[:rng.IntN(len(in))]
			case k == 2: // insert a byte
				i := rng.IntN(len(in) + 1)
				in = append(in[:i], append([]byte{byte(rng.Uint32())}, in[i:]...)...)
			case k == 3 && len(in) > 0: // copy a piece elsewhere
				i, j := rng.IntN(len(in)), rng.IntN(len(in))
				m := min(rng.IntN(16)+1, len(in)-i, len(in)-j)
				copy(in[j:j+m], in[i:i+m])
			default: // append zeros (stream padding) or garbage
				in = append(in, make([]byte, rng.IntN(9))...)
			}
		}
		inputs = append(inputs, in)
	}
	for i, in := range inputs {
		outGo, errGo := decodeAll(newXZGo(bytes.NewReader(in), DefaultMaxMemory))
		outProc, errProc := decodeAll(newXZProcess(bytes.NewReader(in), p, DefaultMaxMemory))
		if (errGo == nil) != (errProc == nil) {
			t.Fatalf("input %d %q: decoders disagree: go: %v; xz: %v", i, in, errGo, errProc)
		}
		if errGo == nil && !bytes.Equal(outGo, outProc) {
			t.Fatalf("input %d %q: different output", i, in)
		}
	}
}

// fuzzMethods are the methods the fuzz targets pick from by index.
var fuzzMethods = []string{"none", "xz", "zstd", "bzip2", "gzip", "br"}

// fuzzSeeds adds, for every method, a valid stream and its corruptions.
func fuzzSeeds(f *testing.F, add func(data []byte, method uint8, limit uint16, readSize uint8)) {
	data := payload(3000)
	for i, m := range fuzzMethods {
		var comp []byte
		switch m {
		case "none":
			comp = data
		case "bzip2":
			// No encoder in Go; the fixture is too large for a seed.
			comp = []byte("BZh91AY&SY")
		case "xz":
			var buf bytes.Buffer
			w, _ := xz.NewWriter(&buf)
			w.Write(data)
			w.Close()
			comp = buf.Bytes()
		default:
			comp = compressData(f, m, data)
		}
		for _, limit := range []uint16{0, 1, 120, 2999, 3000, 3001} {
			add(comp, uint8(i), limit, 7)
		}
		add(comp[:len(comp)/2], uint8(i), 0, 200)
	}
	add(xzBomb(37), 1, 100, 64)
}

// checkCapped decodes data twice, with and without the output cap, and
// checks the cap's contract: never more than limit bytes; past the limit
// exactly limit bytes and ErrTooLarge, the same bytes the unbounded
// decode gives; within it the same result as the unbounded decode; every
// error classified.
func checkCapped(t *testing.T, open func(r io.Reader, o Options) (io.ReadCloser, error), data []byte, limit uint16, readSize uint8) {
	const mem = 1 << 20 // small windows keep the fuzzer fast
	rs := int(readSize)%64 + 1
	rc, err := open(bytes.NewReader(data), Options{SizeHint: 1, MaxMemory: mem, MaxOutput: int64(limit)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAllSmall(io.LimitReader(rc, 1<<20), rs)
	rc.Close()
	if limit > 0 && len(got) > int(limit) {
		t.Fatalf("returned %d bytes with a limit of %d", len(got), limit)
	}
	if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("unclassified error %v", err)
	}
	ref, rerr := open(bytes.NewReader(data), Options{SizeHint: 1, MaxMemory: mem})
	if rerr != nil {
		t.Fatal(rerr)
	}
	want, werr := readAllSmall(io.LimitReader(ref, 1<<20), 4096)
	ref.Close()
	if errors.Is(err, ErrTooLarge) {
		var tl *TooLargeError
		if !errors.As(err, &tl) || tl.Limit != int64(limit) || len(got) != int(limit) {
			t.Fatalf("%v after %d bytes, limit %d", err, len(got), limit)
		}
		if len(want) <= int(limit) || !bytes.Equal(got, want[:limit]) {
			t.Fatalf("capped output is not a prefix of the %d-byte unbounded output", len(want))
		}
		return
	}
	if !bytes.Equal(got, want) && !(err != nil && bytes.HasPrefix(want, got)) {
		t.Fatalf("capped and unbounded decodes differ: %d bytes (%v) vs %d (%v)", len(got), err, len(want), werr)
	}
	if (err == nil) != (werr == nil) && (limit == 0 || len(want) <= int(limit)) {
		t.Fatalf("capped: %v, unbounded: %v", err, werr)
	}
}

// FuzzNewReaderOptions fuzzes every narinfo decoder behind the output
// and memory caps (the in-process xz decoder: fuzzing workers must not
// exec). br is not a narinfo method: NewReaderOptions must refuse it.
func FuzzNewReaderOptions(f *testing.F) {
	fuzzSeeds(f, func(d []byte, m uint8, l uint16, r uint8) { f.Add(d, m, l, r) })
	f.Fuzz(func(t *testing.T, data []byte, method uint8, limit uint16, readSize uint8) {
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		if m == "br" {
			if _, err := NewReaderOptions(bytes.NewReader(data), m, Options{}); !errors.Is(err, ErrUnsupported) {
				t.Fatalf("br accepted as a narinfo method: %v", err)
			}
			return
		}
		checkCapped(t, func(r io.Reader, o Options) (io.ReadCloser, error) {
			return NewReaderOptions(r, m, o)
		}, data, limit, readSize)
	})
}

// FuzzNewContentReader fuzzes the HTTP body decoder the same way, by
// Content-Encoding value.
func FuzzNewContentReader(f *testing.F) {
	encodings := []string{"identity", "xz", "zstd", "x-gzip", "gzip", "br"}
	fuzzSeeds(f, func(d []byte, m uint8, l uint16, r uint8) { f.Add(d, m, l, r) })
	f.Fuzz(func(t *testing.T, data []byte, enc uint8, limit uint16, readSize uint8) {
		e := encodings[int(enc)%len(encodings)]
		checkCapped(t, func(r io.Reader, o Options) (io.ReadCloser, error) {
			return NewContentReader(r, e, o)
		}, data, limit, readSize)
	})
}
