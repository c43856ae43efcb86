package channel

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/nixrepo/nixrepo/internal/compress"
)

// TestReadStorePathsLimit: a list that decodes past the limit is an error
// wrapping compress.ErrTooLarge, never the paths before the limit; at the
// limit exactly it is read whole.
func TestReadStorePathsLimit(t *testing.T) {
	line := "/nix/store/0gm6dydmdwj6mz63yrw4d1sy23lvqc7r-hello-2.12\n"
	text := strings.Repeat(line, 100)
	var b bytes.Buffer
	w, _ := xz.NewWriter(&b)
	w.Write([]byte(text))
	w.Close()
	paths, err := readStorePaths(bytes.NewReader(b.Bytes()), "xz", int64(len(text))-1)
	if !errors.Is(err, compress.ErrTooLarge) || paths != nil {
		t.Fatalf("one byte past the limit: %d paths, %v; want none and ErrTooLarge", len(paths), err)
	}
	paths, err = readStorePaths(bytes.NewReader(b.Bytes()), "xz", int64(len(text)))
	if err != nil || len(paths) != 100 {
		t.Fatalf("at the limit: %d paths, %v; want 100", len(paths), err)
	}
}
