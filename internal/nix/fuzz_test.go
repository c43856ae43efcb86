package nix

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func narInfoSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.narinfo"))
	norm, _ := filepath.Glob(filepath.Join("testdata", "normalize", "*"))
	for _, p := range append(files, norm...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	R := testBase
	for _, s := range []string{
		realNarInfo,
		minimal,
		minimal + "Compression: \nFileSize: +01\nFileHash: md5:3jgzhjhz9zjvbb0kyj7jc500ch\n",
		minimal + "References:  " + R + "  0000000000000000000000000000000z-a \nReferences: \n",
		minimal + "References: \nReferences: " + R + "\n",
		minimal + "CA: \nCA: fixed:r:sha1:a9993e364706816aba3e25717850c26c9cd0d89d\n",
		minimal + "CA: text:sha256:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda\n",
		minimal + "Deriver: " + R + ".drv\nDeriver: unknown-deriver\nSystem: x86_64-linux\n",
		minimal + "Sig: b:x\nSig: a:y\nSig: b:x\nSig: \n",
		minimal + "junk\nFoo: bar\nBar:\nSig: x:y\n",
		replaceLine(minimal, "StorePath", "StorePath: /nix//store/./x/../"+R+"/\n"),
		replaceLine(minimal, "NarHash", "NarHash: sha256-qkH8ZxXeehOKQP056kkOIqz8vEPzXus2gt3j+NP9gfs\n"),
		replaceLine(minimal, "URL", "URL:  a: b \n"),
		strings.ReplaceAll(minimal, "\n", "\r\n"),
		strings.TrimSuffix(minimal, "\n"),
		minimal + "\n",
		"",
		":",
		"StorePath: \n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseNarInfo checks that whatever ParseNarInfo accepts, Bytes writes
// back into something that parses to the same value and is a fixed point.
func FuzzParseNarInfo(f *testing.F) {
	narInfoSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		n, err := ParseNarInfo(in)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is a %T", err, err)
			}
			if pe.Line < 0 || pe.Line > bytes.Count(in, []byte("\n"))+1 {
				t.Fatalf("error line %d out of range: %v", pe.Line, err)
			}
			return
		}
		if n.StorePath.IsZero() || n.URL == "" || n.NarSize == 0 || n.NarHash.IsZero() {
			t.Fatalf("required field missing: %+v", n)
		}
		if !isStrictlySortedRefs(n.References) || !isStrictlySorted(n.Sigs) {
			t.Fatalf("References/Sigs not sorted and unique: %v %q", n.References, n.Sigs)
		}
		out := n.Bytes()
		n2, err := ParseNarInfo(out)
		if err != nil {
			t.Fatalf("Bytes() does not re-parse: %v\n%q\nfrom\n%q", err, out, in)
		}
		if !reflect.DeepEqual(n, n2) {
			t.Fatalf("round trip changed the value:\n%#v\n%#v", n, n2)
		}
		if out2 := n2.Bytes(); !bytes.Equal(out, out2) {
			t.Fatalf("Bytes() is not a fixed point:\n%q\n%q", out, out2)
		}
		if _, err := n.Fingerprint(); (err == nil) != (n.NarHash.Algo == HashSHA256) {
			t.Fatalf("Fingerprint error %v for NarHash %s", err, n.NarHash)
		}
	})
}

// storePathRE and validStorePath are an independent statement of the rules
// ParseStorePath enforces.
var storePathRE = regexp.MustCompile(`^/nix/store/[0-9a-df-np-sv-z]{32}-([A-Za-z0-9+\-._?=]{1,211})$`)

func validStorePath(s string) bool {
	m := storePathRE.FindStringSubmatch(s)
	if m == nil {
		return false
	}
	name := m[1]
	return name != "." && name != ".." && !strings.HasPrefix(name, ".-") && !strings.HasPrefix(name, "..-")
}

func FuzzParseStorePath(f *testing.F) {
	for _, s := range []string{
		"/nix/store/" + testBase,
		"/nix/store/" + testHash + "-" + strings.Repeat("a", 211),
		"/nix/store/" + testHash + "-" + strings.Repeat("a", 212),
		"/nix/store/" + testHash + "-.a",
		"/nix/store/" + testHash + "-..",
		"/nix/store/" + testHash + "Xa",
		"/nix/store/" + testHash + "-a/b",
		"/nix/store/" + testHash + "-a\r",
		"/nix/store/e9v4w1kf41c10q7fdxlbz10s0adiximd-a",
		"/nix/store//" + testBase,
		"/gnu/store/" + testBase,
		testBase,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseStorePath(s)
		if (err == nil) != validStorePath(s) {
			t.Fatalf("ParseStorePath(%q) error %v disagrees with the regexp", s, err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidStorePath) {
				t.Fatalf("error %v does not wrap ErrInvalidStorePath", err)
			}
		} else {
			if p.Absolute() != s || p.String() != s || p.IsZero() ||
				p.HashPart()+"-"+p.Name() != p.Base() || !IsHashPart(p.HashPart()) {
				t.Fatalf("inconsistent %q: %q %q %q", s, p.Absolute(), p.HashPart(), p.Name())
			}
			q, err := ParseStorePathBase(p.Base())
			if err != nil || q != p {
				t.Fatalf("ParseStorePathBase(%q) = %v, %v", p.Base(), q, err)
			}
		}
		q, err := ParseStorePathBase(s)
		if (err == nil) != validStorePath(StoreDir+"/"+s) {
			t.Fatalf("ParseStorePathBase(%q) error %v disagrees with the regexp", s, err)
		}
		if err == nil && q.Base() != s {
			t.Fatalf("ParseStorePathBase(%q).Base() = %q", s, q.Base())
		}
	})
}

func FuzzParseHash(f *testing.F) {
	for _, v := range hashVectors {
		f.Add(string(v.algo) + ":" + v.n32)
		f.Add(string(v.algo) + ":" + v.hex)
		f.Add(v.sri)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if err != nil {
			return
		}
		if len(h.Digest) != h.Algo.Size() {
			t.Fatalf("%q: %d-byte digest for %s", s, len(h.Digest), h.Algo)
		}
		for _, form := range []string{h.String(), h.SRI(), string(h.Algo) + ":" + h.Base16()} {
			h2, err := ParseHash(form)
			if err != nil || !h2.Equal(h) {
				t.Fatalf("%q → %q → %v, %v", s, form, h2, err)
			}
		}
		d, err := DecodeNix32(h.Nix32())
		if err != nil || !slices.Equal(d, h.Digest) {
			t.Fatalf("nix32 round trip of %x: %x %v", h.Digest, d, err)
		}
	})
}
