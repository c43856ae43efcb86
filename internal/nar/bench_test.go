package nar_test

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	gonar "github.com/nix-community/go-nix/pkg/nar"

	"github.com/nixrepo/nixrepo/internal/nar"
)

var (
	pythonNAROnce sync.Once
	pythonNARData []byte
	pythonNARFrom string
)

// pythonNAR returns the NAR of the largest /usr/lib/python3.* directory,
// made by `nix-store --dump` when available and by go-nix's DumpPath
// (byte-identical) otherwise, or skips the benchmark.
func pythonNAR(b *testing.B) []byte {
	pythonNAROnce.Do(func() {
		dirs, _ := filepath.Glob("/usr/lib/python3.*")
		sort.Strings(dirs)
		for i := len(dirs) - 1; i >= 0 && pythonNARData == nil; i-- {
			if fi, err := os.Stat(dirs[i]); err != nil || !fi.IsDir() {
				continue
			}
			if out, err := exec.Command("nix-store", "--dump", dirs[i]).Output(); err == nil {
				pythonNARData, pythonNARFrom = out, "nix-store --dump "+dirs[i]
				break
			}
			var buf bytes.Buffer
			bw := bufio.NewWriterSize(&buf, 1<<20)
			if gonar.DumpPath(bw, dirs[i]) == nil && bw.Flush() == nil {
				pythonNARData, pythonNARFrom = buf.Bytes(), "DumpPath "+dirs[i]
			}
		}
	})
	if pythonNARData == nil {
		b.Skip("no /usr/lib/python3.* directory to dump")
	}
	b.Logf("%s: %d bytes", pythonNARFrom, len(pythonNARData))
	return pythonNARData
}

func BenchmarkCheck(b *testing.B) {
	b.Run("python", func(b *testing.B) {
		data := pythonNAR(b)
		for _, listing := range []bool{false, true} {
			name := "nolisting"
			if listing {
				name = "listing"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := nar.Check(bytes.NewReader(data), nar.Options{Listing: listing}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
	b.Run("pipe64k", func(b *testing.B) {
		// A source that delivers at most 64 KiB per Read, like a pipe from a
		// decompressor subprocess.
		data := pythonNAR(b)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := nar.Check(&slowReader{bytes.NewReader(data), 64 << 10}, nar.Options{Listing: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bigfile", func(b *testing.B) {
		const size = 256 << 20
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := nar.Check(newGenReader(size), nar.Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("smallfiles", func(b *testing.B) {
		// 20000 files of 100 bytes: token parsing dominates.
		var entries [][]string
		for i := range 20000 {
			entries = append(entries, entryT(strings.Repeat("f", 1+i/1000)+string(rune('a'+i%26))+itoa(i), fileT(strings.Repeat("x", 100), i%2 == 0)))
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i][3] < entries[j][3] })
		data := enc(narT(dirT(entries...))...)
		if _, err := nar.Check(bytes.NewReader(data), nar.Options{}); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := nar.Check(bytes.NewReader(data), nar.Options{Listing: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// BenchmarkSHA256 is the upper bound for Check: hashing alone.
func BenchmarkSHA256(b *testing.B) {
	data := pythonNAR(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		h := newSHA()
		_, _ = io.Copy(h, bytes.NewReader(data))
		h.Sum(nil)
	}
}
