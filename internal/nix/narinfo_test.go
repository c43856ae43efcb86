package nix

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// realNarInfo was written by Nix 2.8 (`nix copy --to file://…?secret-key=…`,
// then `nix store sign` with a second key).
const realNarInfo = `StorePath: /nix/store/alcx7vv9abqs6x2j5dr9z1j7cw64k127-y-1.0
URL: nar/1c0swkdm98crlpd6zcc7c8vl4wvzwfi7yz4wky5s59y2qc2nrfnx.nar.xz
Compression: xz
FileHash: sha256:1c0swkdm98crlpd6zcc7c8vl4wvzwfi7yz4wky5s59y2qc2nrfnx
FileSize: 176
NarHash: sha256:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda
NarSize: 168
References: y9v4w1kf41c10q7fdxlbz10s0adiximd-dep-1.0
Deriver: kfcyapsaayf3m618y3xhmiqv51cpqdgn-y-1.0.drv
Sig: test-1:u+wHyY8Kytn2G0XtsyqW/qSU73mvdNcTuqg5GBd9B1GDHD2xG74nTJeOJfsokQm7IYzWiz90e7Kee/AX94q1DQ==
Sig: zzz-2:IxGUN9Z59TUb4eCE0Bj1rHMvM0oGFODyMj4gU557bwaOsnEGiaNBytYuxtn0geL9IoGZwUaERR1exebiRLG0CQ==
`

const (
	realPub1       = "test-1:510Ie1jzsM6awimN1obR/GlxYAqVtuIs+AigMwIPPi4="
	realPub2       = "zzz-2:T9EIuhIRy56uRB2PYqvhAl0BDA1Jd9JIjkWY4MZ62pY="
	realNarHashHex = "aa41fc6715de7a138a40fd39ea490e22acfcbc43f35eeb3682dde3f8d3fd81fb"
)

// minimal is the smallest narinfo Nix accepts.
const minimal = "StorePath: /nix/store/" + testBase + "\nURL: x\nNarHash: sha256:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda\nNarSize: 1\n"

// replaceLine replaces the line starting with key+":" (or appends when absent).
func replaceLine(s, key, line string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, key+":") {
			lines[i] = line
			return strings.Join(lines, "")
		}
	}
	return s + line
}

func dropLine(s, key string) string { return replaceLine(s, key, "") }

func TestParseNarInfoReal(t *testing.T) {
	n, err := ParseNarInfo([]byte(realNarInfo))
	if err != nil {
		t.Fatal(err)
	}
	want := &NarInfo{
		StorePath:   MustParseStorePath("/nix/store/alcx7vv9abqs6x2j5dr9z1j7cw64k127-y-1.0"),
		URL:         "nar/1c0swkdm98crlpd6zcc7c8vl4wvzwfi7yz4wky5s59y2qc2nrfnx.nar.xz",
		Compression: "xz",
		FileHash:    mustHash(t, "sha256:1c0swkdm98crlpd6zcc7c8vl4wvzwfi7yz4wky5s59y2qc2nrfnx"),
		FileSize:    176,
		NarHash:     mustHash(t, "sha256:"+realNarHashHex),
		NarSize:     168,
		References:  []StorePath{MustParseStorePath("/nix/store/" + testBase)},
		Deriver:     "kfcyapsaayf3m618y3xhmiqv51cpqdgn-y-1.0.drv",
		Sigs: []string{
			"test-1:u+wHyY8Kytn2G0XtsyqW/qSU73mvdNcTuqg5GBd9B1GDHD2xG74nTJeOJfsokQm7IYzWiz90e7Kee/AX94q1DQ==",
			"zzz-2:IxGUN9Z59TUb4eCE0Bj1rHMvM0oGFODyMj4gU557bwaOsnEGiaNBytYuxtn0geL9IoGZwUaERR1exebiRLG0CQ==",
		},
	}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("ParseNarInfo =\n%#v\nwant\n%#v", n, want)
	}
	if got := string(n.Bytes()); got != realNarInfo {
		t.Errorf("Bytes() =\n%s\nwant\n%s", got, realNarInfo)
	}
	if n.EffectiveCompression() != "xz" {
		t.Error("EffectiveCompression")
	}
	if got := "nar/" + n.FileHash.Nix32() + ".nar" + NarExtension(n.Compression); got != n.URL {
		t.Errorf("NAR URL = %q, want %q", got, n.URL)
	}
}

func mustHash(t testing.TB, s string) Hash {
	t.Helper()
	h, err := ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestParseNarInfoAccepts lists inputs Nix 2.8 accepts (most were checked
// against `nix path-info --store file://…`, see the interop test) and what
// they must parse to.
func TestParseNarInfoAccepts(t *testing.T) {
	R := testBase
	for _, tc := range []struct {
		name  string
		in    string
		check func(t *testing.T, n *NarInfo)
	}{
		{"minimal", minimal, func(t *testing.T, n *NarInfo) {
			if n.Compression != "" || n.EffectiveCompression() != "bzip2" || !n.FileHash.IsZero() || n.FileSize != 0 ||
				n.References != nil || n.Sigs != nil || n.Deriver != "" || n.CA != "" {
				t.Errorf("%+v", n)
			}
		}},
		{"empty compression", minimal + "Compression: \n", func(t *testing.T, n *NarInfo) {
			if n.Compression != "" || n.EffectiveCompression() != "bzip2" {
				t.Errorf("Compression %q", n.Compression)
			}
		}},
		{"unknown keys and odd separators of unknown keys", "Foo:bar\nX-Y: z\n" + minimal + "Provenance: {}\n", nil},
		{"key order is free", "NarSize: 1\nNarHash: sha256:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda\nURL: x\nStorePath: /nix/store/" + testBase + "\n", nil},
		{"last duplicate wins", minimal + "URL: y\nNarSize: 2\nCompression: a\nCompression: b\nSystem: s1\nSystem: s2\n", func(t *testing.T, n *NarInfo) {
			if n.URL != "y" || n.NarSize != 2 || n.Compression != "b" || n.System != "s2" {
				t.Errorf("%+v", n)
			}
		}},
		{"references: spaces, duplicates, order", minimal + "References:   zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-z  " + R + " " + R + " 0000000000000000000000000000000z-a \n", func(t *testing.T, n *NarInfo) {
			var got []string
			for _, r := range n.References {
				got = append(got, r.Base())
			}
			want := []string{"0000000000000000000000000000000z-a", R, "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-z"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("References = %q, want %q", got, want)
			}
		}},
		{"empty References then non-empty", minimal + "References: \nReferences: " + R + "\n", func(t *testing.T, n *NarInfo) {
			if len(n.References) != 1 {
				t.Errorf("References = %v", n.References)
			}
		}},
		{"self reference", minimal + "References: " + R + "\n", nil},
		{"unknown-deriver", minimal + "Deriver: unknown-deriver\n", func(t *testing.T, n *NarInfo) {
			if n.Deriver != "" {
				t.Errorf("Deriver = %q", n.Deriver)
			}
		}},
		{"unknown-deriver does not clear", minimal + "Deriver: " + R + ".drv\nDeriver: unknown-deriver\n", func(t *testing.T, n *NarInfo) {
			if n.Deriver != R+".drv" {
				t.Errorf("Deriver = %q", n.Deriver)
			}
		}},
		{"sigs sorted and deduplicated", minimal + "Sig: b:x\nSig: a:y\nSig: b:x\nSig: \n", func(t *testing.T, n *NarInfo) {
			if !reflect.DeepEqual(n.Sigs, []string{"", "a:y", "b:x"}) {
				t.Errorf("Sigs = %q", n.Sigs)
			}
		}},
		{"empty CA lines are no CA", minimal + "CA: \nCA: \n", func(t *testing.T, n *NarInfo) {
			if n.CA != "" {
				t.Errorf("CA = %q", n.CA)
			}
		}},
		{"CA canonicalised to nix32", minimal + "CA: fixed:sha256:" + realNarHashHex + "\n", func(t *testing.T, n *NarInfo) {
			if n.CA != "fixed:sha256:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda" {
				t.Errorf("CA = %q", n.CA)
			}
		}},
		{"empty CA then CA", minimal + "CA: \nCA: text:sha256:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda\n", nil},
		{"hash forms", replaceLine(minimal, "NarHash", "NarHash: sha256-qkH8ZxXeehOKQP056kkOIqz8vEPzXus2gt3j+NP9gfs\n") +
			"FileHash: sha256:" + strings.ToUpper(realNarHashHex) + "\n", func(t *testing.T, n *NarInfo) {
			if n.NarHash.Base16() != realNarHashHex || !n.FileHash.Equal(n.NarHash) {
				t.Errorf("%v %v", n.NarHash, n.FileHash)
			}
		}},
		{"sizes with + and leading zeros", replaceLine(minimal, "NarSize", "NarSize: +0168\n") + "FileSize: 0\n", func(t *testing.T, n *NarInfo) {
			if n.NarSize != 168 || n.FileSize != 0 {
				t.Errorf("%d %d", n.NarSize, n.FileSize)
			}
		}},
		{"max uint64", replaceLine(minimal, "NarSize", "NarSize: 18446744073709551615\n"), nil},
		{"StorePath is cleaned like canonPath", replaceLine(minimal, "StorePath", "StorePath: /nix/./store//foo/../"+R+"/\n"), func(t *testing.T, n *NarInfo) {
			if n.StorePath.Base() != R {
				t.Errorf("StorePath = %v", n.StorePath)
			}
		}},
		{"URL keeps spaces and ': '", replaceLine(minimal, "URL", "URL:  a: b \n"), func(t *testing.T, n *NarInfo) {
			if n.URL != " a: b " {
				t.Errorf("URL = %q", n.URL)
			}
		}},
		{"line without colon glued to the next (unknown key)", minimal + "junk\nFoo: bar\n", nil},
		{"unknown Key: swallows the next line", minimal + "Foo:\nSig: a:b\n", func(t *testing.T, n *NarInfo) {
			if n.Sigs != nil {
				t.Errorf("Sigs = %q; Nix reads the Sig line as Foo's value", n.Sigs)
			}
		}},
		{"System", minimal + "System: x86_64-linux\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseNarInfo([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseNarInfo(%q): %v", tc.in, err)
			}
			if tc.check != nil {
				tc.check(t, n)
			}
			checkRoundTrip(t, n)
		})
	}
}

func checkRoundTrip(t *testing.T, n *NarInfo) {
	t.Helper()
	out := n.Bytes()
	n2, err := ParseNarInfo(out)
	if err != nil {
		t.Fatalf("re-parsing Bytes() failed: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(n, n2) {
		t.Fatalf("round trip changed the value:\n%#v\n%#v", n, n2)
	}
	if out2 := n2.Bytes(); string(out2) != string(out) {
		t.Fatalf("Bytes not stable:\n%s\n%s", out, out2)
	}
}

func TestParseNarInfoErrors(t *testing.T) {
	R := testBase
	for _, tc := range []struct {
		name, in string
		want     string // full Error() text
		line     int
		key      string
	}{
		{"empty", "", "narinfo (StorePath): required field StorePath is missing", 0, "StorePath"},
		{"no final newline", strings.TrimSuffix(minimal, "\n"), "narinfo line 4 (NarSize): missing final newline (every narinfo line, including the last, must end in \"\\n\")", 4, "NarSize"},
		{"CRLF", strings.ReplaceAll(minimal, "\n", "\r\n"),
			`narinfo line 1 (StorePath): value contains a carriage return '\r' (CRLF line endings? Nix requires "\n" only)`, 1, "StorePath"},
		{"CR in URL", replaceLine(minimal, "URL", "URL: x\r\n"), `narinfo line 2 (URL): value contains a carriage return`, 2, "URL"},
		{"tab in Sig", minimal + "Sig: a:\tb\n", `narinfo line 5 (Sig): value "a:\tb" contains control character '\t'`, 5, "Sig"},
		{"missing space", replaceLine(minimal, "StorePath", "StorePath:/nix/store/"+R+"\n"),
			`narinfo line 1 (StorePath): "StorePath:/nix/store/` + R + `": the ':' must be followed by a single space (Nix would drop the first byte of the value)`, 1, "StorePath"},
		{"known key with ':' at end of line", minimal + "References:\n", `narinfo line 5 (References): "References:": the ':' must be followed`, 5, "References"},
		{"trailing blank line", minimal + "\n", "narinfo line 5: unexpected empty line (Nix rejects a narinfo that ends in a blank line)", 5, ""},
		{"line without colon at end", minimal + "junk\n", `narinfo line 5: "junk" has no ':' (want "Key: value")`, 5, ""},
		{"unknown key at end without space", minimal + "Foo:\n", `narinfo line 5 (Foo): the last line ends in ':' without the space Nix needs`, 5, "Foo"},
		{"missing StorePath", dropLine(minimal, "StorePath"), "narinfo (StorePath): required field StorePath is missing", 0, "StorePath"},
		{"missing URL", dropLine(minimal, "URL"), "narinfo (URL): required field URL is missing", 0, "URL"},
		{"empty URL", replaceLine(minimal, "URL", "URL: \n"), "narinfo line 2 (URL): URL must not be empty", 2, "URL"},
		{"missing NarHash", dropLine(minimal, "NarHash"), "narinfo (NarHash): required field NarHash is missing", 0, "NarHash"},
		{"missing NarSize", dropLine(minimal, "NarSize"), "narinfo (NarSize): required field NarSize is missing", 0, "NarSize"},
		{"zero NarSize", replaceLine(minimal, "NarSize", "NarSize: 0\n"), "narinfo line 4 (NarSize): NarSize must not be zero", 4, "NarSize"},
		{"blank line hides URL", strings.Replace(minimal, "\nURL", "\n\nURL", 1),
			`narinfo (URL): required field URL is missing (line 2 "" has no ':', so Nix reads it and the next line as one unknown key)`, 0, "URL"},
		{"Foo: swallows URL", strings.Replace(minimal, "\nURL", "\nFoo:\nURL", 1),
			`narinfo (URL): required field URL is missing (line 2 "Foo:" has no space after ':', so Nix reads line 3 as its value)`, 0, "URL"},
		{"space before colon", strings.Replace(minimal, "NarSize:", "NarSize :", 1),
			`narinfo (NarSize): required field NarSize is missing (line 4 has key "NarSize ", which is not "NarSize")`, 0, "NarSize"},
		{"unprefixed NarHash", replaceLine(minimal, "NarHash", "NarHash: abc\n"), `narinfo line 3 (NarHash): hash "abc" has no type prefix (want sha256:… or sha256-…)`, 3, "NarHash"},
		{"short FileHash", minimal + "FileHash: sha256:abc\n", `narinfo line 5 (FileHash): hash "sha256:abc" has wrong length 3 for sha256`, 5, "FileHash"},
		{"bad NarSize", replaceLine(minimal, "NarSize", "NarSize:  1\n"), `narinfo line 4 (NarSize): " 1" is not a decimal unsigned 64-bit integer`, 4, "NarSize"},
		{"negative FileSize", minimal + "FileSize: -1\n", `narinfo line 5 (FileSize): "-1" is not a decimal`, 5, "FileSize"},
		{"hex FileSize", minimal + "FileSize: 0x10\n", `is not a decimal`, 5, "FileSize"},
		{"overflow", replaceLine(minimal, "NarSize", "NarSize: 18446744073709551616\n"), `is not a decimal`, 4, "NarSize"},
		{"StorePath elsewhere", replaceLine(minimal, "StorePath", "StorePath: /gnu/store/"+R+"\n"),
			`narinfo line 1 (StorePath): invalid store path "/gnu/store/` + R + `": not in the Nix store /nix/store (directory is "/gnu/store")`, 1, "StorePath"},
		{"StorePath relative", replaceLine(minimal, "StorePath", "StorePath: nix/store/"+R+"\n"), `not an absolute path`, 1, "StorePath"},
		{"StorePath empty", replaceLine(minimal, "StorePath", "StorePath: \n"), `invalid store path "": empty (Nix 2.8 aborts on this)`, 1, "StorePath"},
		{"StorePath bad name", replaceLine(minimal, "StorePath", "StorePath: /nix/store/"+testHash+"-a b\n"), `name "a b" contains illegal character ' '`, 1, "StorePath"},
		{"bad reference", minimal + "References: " + R + " nope\n", `narinfo line 5 (References): reference 2: invalid store path "nope": too short`, 5, "References"},
		{"absolute reference", minimal + "References: /nix/store/" + R + "\n", `reference 1: invalid store path "/nix/store/`, 5, "References"},
		{"second References", minimal + "References: " + R + "\nReferences: \n", "narinfo line 6 (References): second References line (the first is line 5)", 6, "References"},
		{"second CA", minimal + "CA: text:sha256:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda\nCA: text:sha256:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda\n",
			"narinfo line 6 (CA): second CA line (the first is line 5)", 6, "CA"},
		{"bad CA", minimal + "CA: foo:bar\n", `narinfo line 5 (CA): content address "foo:bar" has unknown prefix "foo" (want text or fixed)`, 5, "CA"},
		{"text CA with sha1", minimal + "CA: text:sha1:kpcd173cq987hw957sx6m0868wv3x6d9\n", "text content addresses must use sha256", 5, "CA"},
		{"CA without hash type", minimal + "CA: fixed:r:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda\n", "hash must be of the form <algo>:<hash>", 5, "CA"},
		{"CA SRI", minimal + "CA: fixed:r:sha256-qkH8ZxXeehOKQP056kkOIqz8vEPzXus2gt3j+NP9gfs=\n", "hash must be of the form <algo>:<hash>", 5, "CA"},
		{"bad Deriver", minimal + "Deriver: foo.drv\n", `narinfo line 5 (Deriver): invalid store path "foo.drv": too short`, 5, "Deriver"},
		{"empty Deriver", minimal + "Deriver: \n", `invalid store path "": empty`, 5, "Deriver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseNarInfo([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParseNarInfo(%q) succeeded", tc.in)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is a %T, not *ParseError", err, err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %s\nwant\n  %s", err, tc.want)
			}
			if pe.Line != tc.line || pe.Key != tc.key {
				t.Errorf("Line, Key = %d, %q; want %d, %q", pe.Line, pe.Key, tc.line, tc.key)
			}
		})
	}
}

func TestParseErrorUnwrap(t *testing.T) {
	_, err := ParseNarInfo([]byte(minimal + "References: bad\n"))
	if !errors.Is(err, ErrInvalidStorePath) {
		t.Errorf("%v does not wrap ErrInvalidStorePath", err)
	}
}

func TestBytesNormalises(t *testing.T) {
	a := MustParseStorePath("/nix/store/0000000000000000000000000000000z-a")
	z := MustParseStorePath("/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-z")
	n := &NarInfo{
		StorePath:  MustParseStorePath("/nix/store/" + testBase),
		URL:        "nar/x.nar",
		NarHash:    mustHash(t, "sha256:"+realNarHashHex),
		NarSize:    5,
		References: []StorePath{z, a, z},
		Sigs:       []string{"b:2", "a:1", "b:2"},
	}
	want := "StorePath: /nix/store/" + testBase + "\nURL: nar/x.nar\nNarHash: sha256:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda\nNarSize: 5\n" +
		"References: " + a.Base() + " " + z.Base() + "\nSig: a:1\nSig: b:2\n"
	if got := string(n.Bytes()); got != want {
		t.Errorf("Bytes() =\n%s\nwant\n%s", got, want)
	}
	// Bytes must not reorder the caller's slices.
	if n.References[0] != z || n.Sigs[0] != "b:2" {
		t.Error("Bytes modified the NarInfo")
	}
	fp, err := n.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	if want := "1;/nix/store/" + testBase + ";sha256:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda;5;" + a.Absolute() + "," + z.Absolute(); fp != want {
		t.Errorf("Fingerprint = %q, want %q", fp, want)
	}
	if n.References[0] != z || len(n.References) != 3 {
		t.Error("Fingerprint modified the NarInfo")
	}
	if got := string((&NarInfo{}).Bytes()); got != "References: \n" {
		t.Errorf("empty NarInfo Bytes = %q", got)
	}
}

func TestFingerprint(t *testing.T) {
	n, err := ParseNarInfo([]byte(realNarInfo))
	if err != nil {
		t.Fatal(err)
	}
	fp, err := n.Fingerprint()
	want := "1;/nix/store/alcx7vv9abqs6x2j5dr9z1j7cw64k127-y-1.0;sha256:1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda;168;/nix/store/" + testBase
	if err != nil || fp != want {
		t.Errorf("Fingerprint = %q, %v; want %q", fp, err, want)
	}
	// A base16/SRI NarHash is re-rendered in nix32.
	n2, err := ParseNarInfo([]byte(replaceLine(realNarInfo, "NarHash", "NarHash: sha256-qkH8ZxXeehOKQP056kkOIqz8vEPzXus2gt3j+NP9gfs=\n")))
	if err != nil {
		t.Fatal(err)
	}
	if fp2, _ := n2.Fingerprint(); fp2 != want {
		t.Errorf("Fingerprint with SRI NarHash = %q", fp2)
	}
	for name, mod := range map[string]func(n *NarInfo){
		"sha512":   func(n *NarInfo) { n.NarHash = Hash{Algo: HashSHA512, Digest: make([]byte, 64)} },
		"no hash":  func(n *NarInfo) { n.NarHash = Hash{} },
		"no size":  func(n *NarInfo) { n.NarSize = 0 },
		"no path":  func(n *NarInfo) { n.StorePath = StorePath{} },
		"bad hash": func(n *NarInfo) { n.NarHash.Digest = n.NarHash.Digest[:31] },
	} {
		c := *n
		mod(&c)
		if _, err := c.Fingerprint(); err == nil {
			t.Errorf("%s: Fingerprint succeeded", name)
		}
		if c.Verify([]PublicKey{mustPub(t, realPub1)}) {
			t.Errorf("%s: Verify succeeded", name)
		}
	}
}

func TestNarExtension(t *testing.T) {
	for c, ext := range map[string]string{
		"xz": ".xz", "bzip2": ".bz2", "zstd": ".zst", "lzip": ".lzip", "lz4": ".lz4", "br": ".br",
		"none": "", "": "", "gzip": "", "lzma": "", "compress": "", "XZ": "",
	} {
		if got := NarExtension(c); got != ext {
			t.Errorf("NarExtension(%q) = %q, want %q", c, got, ext)
		}
	}
	h := mustHash(t, "sha256:1c0swkdm98crlpd6zcc7c8vl4wvzwfi7yz4wky5s59y2qc2nrfnx")
	if got := "nar/" + h.Nix32() + ".nar" + NarExtension("none"); got != "nar/1c0swkdm98crlpd6zcc7c8vl4wvzwfi7yz4wky5s59y2qc2nrfnx.nar" {
		t.Errorf("NAR URL = %q", got)
	}
}

func TestCanonicalCA(t *testing.T) {
	const n32 = "1yw1zp9ziqyxh8vfnppk8fygrb121r4ylfgx82516yny2mkzqhda"
	for in, want := range map[string]string{
		"text:sha256:" + n32:                                          "text:sha256:" + n32,
		"text:sha256:" + realNarHashHex:                               "text:sha256:" + n32,
		"fixed:r:sha256:" + n32:                                       "fixed:r:sha256:" + n32,
		"fixed:sha256:" + realNarHashHex:                              "fixed:sha256:" + n32,
		"fixed:sha1:kpcd173cq987hw957sx6m0868wv3x6d9":                 "fixed:sha1:kpcd173cq987hw957sx6m0868wv3x6d9",
		"fixed:r:sha256:qkH8ZxXeehOKQP056kkOIqz8vEPzXus2gt3j+NP9gfs=": "fixed:r:sha256:" + n32,
	} {
		got, err := CanonicalCA(in)
		if err != nil || got != want {
			t.Errorf("CanonicalCA(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "text", "fixed:r:", "fixed:md4:abc", "fixed:r:sha256:abc", "text:sha256"} {
		if _, err := CanonicalCA(in); err == nil {
			t.Errorf("CanonicalCA(%q) succeeded", in)
		}
	}
}
