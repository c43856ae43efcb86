package nar_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	gonar "github.com/nix-community/go-nix/pkg/nar"

	"github.com/nixrepo/nixrepo/internal/nar/nartest"
)

// Helpers that assemble NAR token streams by hand, so that tests can build
// both valid and deliberately broken NARs.

// enc serialises tokens as NAR strings.
func enc(tokens ...string) []byte { return nartest.Strings(tokens...) }

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func narT(node []string) []string { return cat([]string{"nix-archive-1"}, node) }

func fileT(contents string, executable bool) []string {
	if executable {
		return []string{"(", "type", "regular", "executable", "", "contents", contents, ")"}
	}
	return []string{"(", "type", "regular", "contents", contents, ")"}
}

func linkT(target string) []string {
	return []string{"(", "type", "symlink", "target", target, ")"}
}

func entryT(name string, node []string) []string {
	return cat([]string{"entry", "(", "name", name, "node"}, node, []string{")"})
}

func dirT(entries ...[]string) []string {
	return cat([]string{"(", "type", "directory"}, cat(entries...), []string{")"})
}

// sampleNAR returns a small valid NAR with every kind of node.
func sampleNAR() []byte {
	return enc(narT(dirT(
		entryT("bin", dirT(
			entryT("hello", fileT("#!/bin/sh\necho hello\n", true)),
			entryT("hi", linkT("hello")),
		)),
		entryT("empty", dirT()),
		entryT("lib", dirT(
			entryT("a", fileT("", false)),
			entryT("b", fileT("12345678", false)),
			entryT("c", fileT("123456789", true)),
		)),
		entryT("z\"odd\\name\x01\x7f\xff", linkT("../t\n")),
	))...)
}

// lsNode is a node of Nix's .ls listing, decoded by encoding/json.
type lsNode struct {
	Type       string             `json:"type"`
	Size       uint64             `json:"size"`
	Executable bool               `json:"executable"`
	NarOffset  uint64             `json:"narOffset"`
	Target     string             `json:"target"`
	Entries    map[string]*lsNode `json:"entries"`
}

// rebuild re-serialises the tree described by a listing with go-nix's
// nar.Writer, taking file contents from the NAR at their narOffset. For a
// correct listing of a canonical NAR the result equals the NAR. ok is false
// when the listing cannot be decoded losslessly (invalid UTF-8 names).
func rebuild(t testing.TB, listing, narBytes []byte) (out []byte, ok bool) {
	t.Helper()
	if !utf8.Valid(listing) {
		return nil, false
	}
	var doc struct {
		Version int     `json:"version"`
		Root    *lsNode `json:"root"`
	}
	if err := json.Unmarshal(listing, &doc); err != nil {
		t.Fatalf("listing is not JSON: %v\n%s", err, listing)
	}
	if doc.Version != 1 || doc.Root == nil {
		t.Fatalf("listing has version %d, root %v", doc.Version, doc.Root)
	}
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w, err := gonar.NewWriter(bw)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(path string, n *lsNode) error
	walk = func(path string, n *lsNode) error {
		switch n.Type {
		case "regular":
			if n.NarOffset+n.Size > uint64(len(narBytes)) {
				return fmt.Errorf("%s: narOffset %d + size %d beyond NAR", path, n.NarOffset, n.Size)
			}
			if err := w.WriteHeader(&gonar.Header{Path: path, Type: gonar.TypeRegular, Size: int64(n.Size), Executable: n.Executable}); err != nil {
				return err
			}
			_, err := w.Write(narBytes[n.NarOffset : n.NarOffset+n.Size])
			return err
		case "symlink":
			return w.WriteHeader(&gonar.Header{Path: path, Type: gonar.TypeSymlink, LinkTarget: n.Target})
		case "directory":
			if err := w.WriteHeader(&gonar.Header{Path: path, Type: gonar.TypeDirectory}); err != nil {
				return err
			}
			names := make([]string, 0, len(n.Entries))
			for name := range n.Entries {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				if err := walk(strings.TrimSuffix(path, "/")+"/"+name, n.Entries[name]); err != nil {
					return err
				}
			}
			return nil
		}
		return fmt.Errorf("%s: unknown type %q", path, n.Type)
	}
	if err := walk("/", doc.Root); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), true
}

// slowReader returns at most n bytes per Read, to exercise refills.
type slowReader struct {
	r io.Reader
	n int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.r.Read(p)
}

func newSHA() hash.Hash { return sha256.New() }
