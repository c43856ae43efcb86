//go:build linux

package compress

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestMain runs a TestPeakRSSIsBounded child (NIXREPO_RSS_CHILD set) instead of
// the tests.
func TestMain(m *testing.M) {
	if spec := os.Getenv("NIXREPO_RSS_CHILD"); spec != "" {
		if err := rssChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestPeakRSSIsBounded decodes a 1 GiB stream with each decoder, each in a fresh
// child process, and checks the peak resident memory (of the test process,
// and of the xz process where one is used). About 20 s; -short skips it.
func TestPeakRSSIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 1 GiB per decoder")
	}
	const total = 1 << 30
	dir := t.TempDir()
	// The data repeats a 4 MiB block with small changes: cheap to compress,
	// while the decoders still use the 8 MiB window of Nix's default xz
	// preset.
	gen := func() io.Reader { return &repeatReader{block: payload(4 << 20), left: total} }
	inputs := map[string]string{}
	if _, err := exec.LookPath("xz"); err == nil {
		f := filepath.Join(dir, "data.xz")
		cmd := exec.Command("sh", "-c", "xz -T1 --lzma2=preset=1,dict=8MiB -c > "+f)
		cmd.Stdin = gen()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("xz: %v %s", err, out)
		}
		inputs["xz"] = f
	}
	{
		f := filepath.Join(dir, "data.zst")
		out, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := zstd.NewWriter(out, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(8<<20))
		if _, err := io.Copy(w, gen()); err != nil {
			t.Fatal(err)
		}
		w.Close()
		out.Close()
		inputs["zstd"] = f
	}
	for _, v := range []struct{ decoder, input string }{
		{"xz-process", "xz"}, {"xz-go", "xz"}, {"zstd", "zstd"},
	} {
		in, ok := inputs[v.input]
		if !ok {
			t.Logf("%s: no input", v.decoder)
			continue
		}
		if v.decoder == "xz-process" && xzPath() == "" {
			continue
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "NIXREPO_RSS_CHILD="+v.decoder+":"+in)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", v.decoder, err, out)
		}
		var line string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "RESULT ") {
				line = l[strings.Index(l, "RESULT ")+7:]
			}
		}
		var n, self, children int64
		if _, err := fmt.Sscanf(line, "bytes=%d self=%d children=%d", &n, &self, &children); err != nil {
			t.Fatalf("%s: bad child output %q: %v\n%s", v.decoder, line, err, out)
		}
		t.Logf("%-10s decoded %d bytes: peak RSS %5.1f MiB (test process), %5.1f MiB (largest child)",
			v.decoder, n, float64(self)/1024, float64(children)/1024)
		if n != total {
			t.Errorf("%s: decoded %d bytes, want %d", v.decoder, n, total)
		}
		if self > 64<<10 || children > 64<<10 {
			t.Errorf("%s: peak RSS above 64 MiB", v.decoder)
		}
	}
}

// rssChild decodes the file of spec ("<decoder>:<path>") and prints
// "RESULT bytes=N self=KiB children=KiB" (peak RSS of this process and of
// its largest child).
func rssChild(spec string) error {
	decoder, path, _ := strings.Cut(spec, ":")
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var rc io.ReadCloser
	switch decoder {
	case "xz-process":
		rc = newXZProcess(f, xzPath(), DefaultMaxMemory)
	case "xz-go":
		rc = newXZGo(f, DefaultMaxMemory)
	default:
		if rc, err = NewReader(f, decoder); err != nil {
			return err
		}
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil {
		return err
	}
	// VmHWM, unlike getrusage's maxrss, does not carry over the parent's
	// peak across exec.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	var hwm int64
	for _, l := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &hwm)
		}
	}
	var children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	fmt.Printf("RESULT bytes=%d self=%d children=%d\n", n, hwm, children.Maxrss)
	return nil
}

// repeatReader yields left bytes: block repeated, each copy with a
// different first few bytes.
type repeatReader struct {
	block []byte
	left  int64
	pos   int
	round int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	if r.pos == len(r.block) {
		r.pos = 0
		r.round++
		copy(r.block, fmt.Sprintf("round %d ", r.round))
	}
	n := copy(p, r.block[r.pos:])
	r.pos += n
	r.left -= int64(n)
	return n, nil
}
