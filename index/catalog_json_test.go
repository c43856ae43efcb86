package index

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// encodingJSONShard is what encodeShard wrote before it had its own
// appenders: the reference the appenders must match byte for byte.
func encodingJSONShard(t testing.TB, pkgs []Package) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if pkgs == nil {
		pkgs = []Package{}
	}
	if err := enc.Encode(pkgs); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAppendPackagesMatchesEncodingJSON(t *testing.T) {
	up := time.Date(2026, 11, 28, 1, 2, 3, 456789000, time.UTC)
	path := PathInfo{StorePath: "/nix/store/8lpj39vx1gjv42hfq3f8qx9faka6bpas-hello-2.12", Output: "out",
		NarSize: 1 << 40, FileSize: 0, Uploaded: up, Repos: []string{"main", "staging"}}
	tests := []struct {
		name string
		pkgs []Package
	}{
		{"nil shard", nil},
		{"empty shard", []Package{}},
		{"zero package", []Package{{}}},
		{"typical", []Package{{
			Name: "hello", Latest: "2.12", Repos: []string{"main"},
			Versions: []Version{
				{Version: "2.12", Paths: []PathInfo{path, {StorePath: "/nix/store/x-hello-2.12-man", Output: "man", Uploaded: up.Add(time.Second)}},
					Repos: []string{"main"}, Channels: []string{"main/nixpkgs/1", "main/nixpkgs/2"}},
				{Version: "2.012", Paths: []PathInfo{}, Repos: []string{}, Ambiguous: true},
			},
			Description: "A program that produces a familiar, friendly greeting",
			Homepage:    "https://www.gnu.org/software/hello/", License: "GPL-3.0-or-later", AttrPath: "hello",
		}}},
		{"escapes", []Package{{
			Name: "a\"b\\c\n\r\t\b\f\x00\x1f\x7f<tag>&amp;", Latest: "ünï\u2028\u2029😀",
			Description: "bad utf-8 \xff\xfe and a lone \xc3", Homepage: "\u00e9\u0301",
			Versions: []Version{{Version: "1", Paths: []PathInfo{{Uploaded: time.Unix(0, 0).UTC()},
				{Uploaded: time.Date(2020, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600))}}}},
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := encodingJSONShard(t, tc.pkgs)
			got := encodeShard(tc.pkgs)
			if !bytes.Equal(got, want) {
				t.Fatalf("encodeShard:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\/", "\x00\x01\x1f\x7f", "\xff", "\u2028\u2029", "é😀", "\xed\xa0\x80", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}

// TestEncodeShardOfBuiltCatalog checks the appenders on a catalog Build
// assembled (repos, channels, metadata, ambiguous versions).
func TestEncodeShardOfBuiltCatalog(t *testing.T) {
	f := newFixture(t)
	f.add("main", "hello-2.12", "a", 100)
	f.add("main", "hello-2.12-man", "b", 10)
	f.add("staging", "hello-2.12", "a", 100)
	f.add("staging", "hello-2.012", "c", 100)
	f.add("main", "openssl-3.4.0-dev", "d", 5)
	cat, err := Build(t.Context(), f.st, repoInfos("main", "staging"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Packages) != 2 {
		t.Fatalf("%d packages, want 2", len(cat.Packages))
	}
	got := encodeShard(cat.Packages)
	if want := encodingJSONShard(t, cat.Packages); !bytes.Equal(got, want) {
		t.Fatalf("encodeShard:\n got %s\nwant %s", got, want)
	}
}

func TestParsePackagesJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]pkgMeta
		err  bool
	}{
		{"empty", `{}`, map[string]pkgMeta{}, false},
		{"other keys skipped", `{"version":2,"x":{"packages":{"a":{"name":"no-1"}}},"packages":{}}`, map[string]pkgMeta{}, false},
		{"typical", `{"version":2,"packages":{"hello":{"name":"hello-2.12","pname":"hello","version":"2.12","system":"x86_64-linux",
			"meta":{"available":true,"description":"Greets","homepage":["https://h/","https://g/"],"license":{"spdxId":"GPL-3.0-or-later"},
			"maintainers":[{"name":"x","github":"y"}],"platforms":["x86_64-linux",{"a":[1,2,{"b":null}]}]}}}}`,
			map[string]pkgMeta{"hello": {Description: "Greets", Homepage: "https://h/", License: "GPL-3.0-or-later", AttrPath: "hello"}}, false},
		{"shortest attribute path wins", `{"packages":{"pkgsStatic.hello":{"name":"hello-2.12","meta":{"description":"static"}},
			"hello":{"name":"hello-2.12","meta":{"description":"plain"}},"pkgsMusl.hello":{"name":"hello-2.12"}}}`,
			map[string]pkgMeta{"hello": {Description: "plain", AttrPath: "hello"}}, false},
		{"pname when name has no package", `{"packages":{"x":{"name":null,"pname":"xyz","meta":null}}}`,
			map[string]pkgMeta{"xyz": {AttrPath: "x"}}, false},
		{"null and nameless entries skipped", `{"packages":{"a":null,"b":{},"c":{"meta":{"description":"d"}}}}`, map[string]pkgMeta{}, false},
		{"odd meta values", `{"packages":{"a":{"name":"a-1","meta":{"description":7,"homepage":{},"license":["MIT",{"shortName":"bsd3"},3,{"fullName":"Full"}]}}}}`,
			map[string]pkgMeta{"a": {License: "MIT, bsd3, Full", AttrPath: "a"}}, false},
		{"escapes", `{"packages":{"a\u0062":{"name":"\u00fcnic\u00f6de-1.0","meta":{"description":"line\nbreak \"q\""}}}}`,
			map[string]pkgMeta{"ünicöde": {Description: "line\nbreak \"q\"", AttrPath: "ab"}}, false},
		{"name not a string", `{"packages":{"a":{"name":5}}}`, nil, true},
		{"entry not an object", `{"packages":{"a":[1]}}`, nil, true},
		{"truncated", `{"packages":{"a":{"name":"a-1"`, nil, true},
		{"not an object", `[]`, nil, true},
		{"trailing data", `{} {}`, nil, true},
		{"invalid JSON", `{"packages":{"a":{"name":"a-1",}}}`, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePackagesJSON(strings.NewReader(tc.in))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error: %v", err, tc.err)
			}
			if !tc.err && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func FuzzParsePackagesJSON(f *testing.F) {
	f.Add(`{"packages":{"hello":{"name":"hello-2.12","meta":{"description":"d","homepage":["h"],"license":[{"spdxId":"MIT"}]}}}}`)
	f.Add(`{"version":2,"packages":{"a":null,"b":{"pname":"b","meta":null}}}`)
	f.Add(`{"packages":{"a":{"name":"a-1","meta":{"license":"x"}}}} `)
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parsePackagesJSON(strings.NewReader(in))
		if err != nil {
			return
		}
		if !json.Valid([]byte(in)) {
			t.Fatalf("accepted invalid JSON %q", in)
		}
		for name, pm := range got {
			if name == "" || pm.AttrPath == "" && !strings.Contains(in, `"":`) {
				t.Fatalf("entry %q %+v from %q", name, pm, in)
			}
		}
	})
}

func BenchmarkEncodeShard(b *testing.B) {
	var pkgs []Package
	for i := range 60 {
		p := Package{Name: fmt.Sprintf("lib%d-dev", i), Latest: "1.2.3", Repos: []string{"main"}, Description: "a library for testing encoders"}
		for v := range 3 {
			ver := Version{Version: fmt.Sprintf("1.2.%d", v), Repos: []string{"main", "staging"}, Channels: []string{"main/nixpkgs-unstable/26.05pre1"}}
			for _, out := range []string{"out", "dev", "lib"} {
				ver.Paths = append(ver.Paths, PathInfo{StorePath: "/nix/store/ingl0k7abj8w3rczc1k7xp6k8sgjq084-" + p.Name + "-" + ver.Version + "-" + out,
					Output: out, NarSize: 14588209, FileSize: 4862736, Uploaded: time.Unix(1795821282, 642062253).UTC(), Repos: []string{"main"}})
			}
			p.Versions = append(p.Versions, ver)
		}
		pkgs = append(pkgs, p)
	}
	b.SetBytes(int64(len(encodeShard(pkgs))))
	buf := make([]byte, 0, 1<<20)
	for b.Loop() {
		buf = appendPackages(buf[:0], pkgs)
	}
}
