package compress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Benchmark inputs live in $NIXREPO_BENCH_DIR (default /tmp/nixrepo-bench):
//
//	nix-store --dump /usr/lib/python3.11 > py311.nar
//	xz -6 -T1 -c py311.nar > py311.nar.xz
//	zstd -3 -T1 -c py311.nar > py311.nar.zst
//	bzip2 -c py311.nar > py311.nar.bz2
//
// Benchmarks whose file is missing are skipped.
func benchFile(b *testing.B, name string) string {
	dir := os.Getenv("NIXREPO_BENCH_DIR")
	if dir == "" {
		dir = "/tmp/nixrepo-bench"
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		b.Skipf("%s missing (see bench_test.go for how to make it)", p)
	}
	return p
}

// BenchmarkDecode reports MB/s of decompressed output for the ~50 MB
// Python NAR.
func BenchmarkDecode(b *testing.B) {
	type bench struct {
		name, file string
		open       func(io.Reader) io.ReadCloser
		fromFile   bool // hand an *os.File to the decoder instead of a bytes.Reader
	}
	via := func(method string) func(io.Reader) io.ReadCloser {
		return func(r io.Reader) io.ReadCloser {
			rc, _ := NewReader(r, method)
			return rc
		}
	}
	benches := []bench{
		{"xz-go", "py311.nar.xz", xzGoDefault, false},
		{"zstd", "py311.nar.zst", via("zstd"), false},
		{"bzip2", "py311.nar.bz2", via("bzip2"), false},
	}
	if p := xzPath(); p != "" {
		proc := func(r io.Reader) io.ReadCloser { return newXZProcess(r, p, DefaultMaxMemory) }
		benches = append(benches,
			bench{"xz-process", "py311.nar.xz", proc, false},
			bench{"xz-process-file", "py311.nar.xz", proc, true})
	}
	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			path := benchFile(b, bc.file)
			comp, err := os.ReadFile(path)
			if err != nil {
				b.Fatal(err)
			}
			var size int64
			buf := make([]byte, 256<<10)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				var in io.Reader = bytes.NewReader(comp)
				if bc.fromFile {
					f, err := os.Open(path)
					if err != nil {
						b.Fatal(err)
					}
					in = f
					defer f.Close()
				}
				rc := bc.open(in)
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf)
				rc.Close()
				if err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					size = n
					b.SetBytes(n)
				} else if n != size {
					b.Fatalf("decoded %d bytes, then %d", size, n)
				}
			}
		})
	}
}

// BenchmarkXZSmall measures both xz decoders on small inputs (prefixes of
// the Python NAR, or generated data) to find where the subprocess starts
// to pay off. Names give the compressed size.
func BenchmarkXZSmall(b *testing.B) {
	p := xzPath()
	if p == "" {
		b.Skip("xz not installed")
	}
	src := payload(16 << 20)
	if nar, err := os.ReadFile(filepath.Join(os.Getenv("NIXREPO_BENCH_DIR"), "py311.nar")); err == nil {
		src = nar
	} else if nar, err := os.ReadFile("/tmp/nixrepo-bench/py311.nar"); err == nil {
		src = nar
	}
	for _, n := range []int{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		data := src[:n]
		comp := compressData(b, "xz", data)
		for _, d := range []struct {
			name string
			open func(io.Reader) io.ReadCloser
		}{
			{"go", xzGoDefault},
			{"process", func(r io.Reader) io.ReadCloser { return newXZProcess(r, p, DefaultMaxMemory) }},
		} {
			b.Run(fmt.Sprintf("in=%dK/xz=%dB/%s", n>>10, len(comp), d.name), func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					rc := d.open(bytes.NewReader(comp))
					if _, err := io.Copy(io.Discard, rc); err != nil {
						b.Fatal(err)
					}
					rc.Close()
				}
			})
		}
	}
}
