package e2e_test

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/nixrepo/nixrepo/internal/nar/nartest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// synthetic is a store path made up by the test, with a NAR of one regular
// file: content the test controls, so that two uploads can claim one store
// path with different NARs, or two store paths can share one NAR file.
type synthetic struct {
	ni  *nix.NarInfo
	nar []byte
}

// randomStorePath is a fresh store path named name.
func randomStorePath(t *testing.T, name string) nix.StorePath {
	var d [20]byte
	rand.Read(d[:])
	sp, err := nix.ParseStorePath(nix.StoreDir + "/" + nix.EncodeNix32(d[:]) + "-" + name)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// newSynthetic is store path sp holding a file with contents, uncompressed,
// with refs as its references.
func newSynthetic(sp nix.StorePath, contents []byte, refs ...nix.StorePath) *synthetic {
	nar := nartest.File(contents)
	h := sha256.Sum256(nar)
	ni := &nix.NarInfo{StorePath: sp, Compression: "none", FileHash: nix.SHA256(h[:]), FileSize: uint64(len(nar)),
		NarHash: nix.SHA256(h[:]), NarSize: uint64(len(nar)), References: refs}
	ni.URL = store.NarFile(ni.FileHash, "none")
	return &synthetic{ni: ni, nar: nar}
}

// writeTo puts the path into a binary cache folder, as nix copy --to
// file://dir would: the NAR file first, the narinfo last.
func (s *synthetic) writeTo(t *testing.T, dir string) {
	if err := os.MkdirAll(filepath.Join(dir, "nar"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, s.ni.URL), s.nar, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, s.ni.StorePath.HashPart()+".narinfo"), s.ni.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// cached is a path of a binary cache folder written by nix copy.
type cached struct {
	ni   *nix.NarInfo
	info []byte // the narinfo as Nix wrote it
	nar  []byte
}

// readCache reads every path of the binary cache folder dir, references
// before the paths that refer to them.
func readCache(t *testing.T, dir string) []*cached {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]*cached{}
	for _, f := range files {
		info, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ni, err := nix.ParseNarInfo(info)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		nar, err := os.ReadFile(filepath.Join(dir, ni.URL))
		if err != nil {
			t.Fatal(err)
		}
		byPath[ni.StorePath.String()] = &cached{ni: ni, info: info, nar: nar}
	}
	var out []*cached
	seen := map[string]bool{}
	var visit func(p string)
	visit = func(p string) {
		c, ok := byPath[p]
		if !ok || seen[p] {
			return
		}
		seen[p] = true
		for _, r := range c.ni.References {
			visit(r.String())
		}
		out = append(out, c)
	}
	keys := make([]string, 0, len(byPath))
	for k := range byPath {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		visit(k)
	}
	return out
}

// closureOf is p's closure in cache order (references first).
func closureOf(all []*cached, p string) []*cached {
	byPath := map[string]*cached{}
	for _, c := range all {
		byPath[c.ni.StorePath.String()] = c
	}
	want := map[string]bool{}
	var mark func(string)
	mark = func(p string) {
		if want[p] {
			return
		}
		want[p] = true
		if c, ok := byPath[p]; ok {
			for _, r := range c.ni.References {
				mark(r.String())
			}
		}
	}
	mark(p)
	var out []*cached
	for _, c := range all {
		if want[c.ni.StorePath.String()] {
			out = append(out, c)
		}
	}
	return out
}

// channelTarball is a small valid channel tarball (xz): a top folder with a
// default.nix that carries value.
func channelTarball(t *testing.T, value string) []byte {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	body := fmt.Sprintf("{ ... }: { value = %q; }\n", value)
	tw.WriteHeader(&tar.Header{Name: "nixexprs/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "nixexprs/default.nix", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
	tw.Write([]byte(body))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var xb bytes.Buffer
	xw, err := xz.NewWriter(&xb)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(tb.Bytes())
	if err := xw.Close(); err != nil {
		t.Fatal(err)
	}
	return xb.Bytes()
}

// tally counts what the test saw, by kind, for the report.
type tally struct {
	counts map[string]int
}

func (t *tally) add(kind string) {
	if t.counts == nil {
		t.counts = map[string]int{}
	}
	t.counts[kind]++
}

func (t *tally) String() string {
	keys := make([]string, 0, len(t.counts))
	for k := range t.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, t.counts[k])
	}
	return strings.TrimSpace(b.String())
}
