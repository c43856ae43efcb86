package compress

import (
	"bytes"
	"io"
	"testing"
)

// FuzzXZDecoders checks that the two xz decoders agree: for any input
// either both fail or both succeed with the same output. Neither may
// panic. (The subprocess makes this slow: a few hundred inputs a second.)
func FuzzXZDecoders(f *testing.F) {
	p := xzPath()
	if p == "" {
		f.Skip("xz not installed")
	}
	one := compressData(f, "xz", payload(3000))
	f.Add(one)
	f.Add(append(append(bytes.Clone(one), 0, 0, 0, 0), one...))
	f.Add(compressData(f, "xz", nil))
	f.Add(one[:len(one)-4])
	f.Fuzz(func(t *testing.T, data []byte) {
		decode := func(rc io.ReadCloser) ([]byte, error) {
			defer rc.Close()
			return io.ReadAll(io.LimitReader(rc, 64<<20))
		}
		outGo, errGo := decode(newXZGo(bytes.NewReader(data)))
		outProc, errProc := decode(newXZProcess(bytes.NewReader(data), p))
		if (errGo == nil) != (errProc == nil) {
			t.Fatalf("decoders disagree: go: %v; xz: %v", errGo, errProc)
		}
		if errGo == nil && !bytes.Equal(outGo, outProc) {
			t.Fatalf("decoders produced different output (%d vs %d bytes)", len(outGo), len(outProc))
		}
	})
}
