package index

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Golden files: cases with the results real Nix gave (TestNixDifferential
// checks them against nix-instantiate and rewrites them with -update), so
// that the Nix semantics are tested also where Nix is not installed.
const (
	goldenNames   = "names-parsedrvname.txt"
	goldenCompare = "versions-compare.txt"
	goldenSplit   = "versions-split.txt"
)

// goldenFile is one testdata file: its comment header and its cases, each
// a list of fields (strings unquoted; results as written).
type goldenFile struct {
	header []string
	cases  [][]string
}

func readGolden(t testing.TB, name string) goldenFile {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var g goldenFile
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			g.header = append(g.header, line)
			continue
		}
		fields, err := splitGoldenLine(line)
		if err != nil {
			t.Fatalf("%s:%d: %v", name, n, err)
		}
		g.cases = append(g.cases, fields)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return g
}

// splitGoldenLine splits a line into space-separated fields, each a
// Go-quoted string or a bare token.
func splitGoldenLine(line string) ([]string, error) {
	var fields []string
	for line != "" {
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, fmt.Errorf("bad quoted field at %q: %v", line, err)
			}
			s, _ := strconv.Unquote(q)
			fields = append(fields, s)
			line = line[len(q):]
		} else {
			tok, _, _ := strings.Cut(line, " ")
			fields = append(fields, tok)
			line = line[len(tok):]
		}
		if line != "" {
			if line[0] != ' ' {
				return nil, fmt.Errorf("want a space between fields at %q", line)
			}
			line = line[1:]
		}
	}
	return fields, nil
}

func writeGolden(t testing.TB, name string, g goldenFile) {
	t.Helper()
	var b strings.Builder
	for _, h := range g.header {
		b.WriteString(h + "\n")
	}
	for _, c := range g.cases {
		for i, f := range c {
			if i > 0 {
				b.WriteByte(' ')
			}
			if name == goldenCompare && i == 2 { // the result
				b.WriteString(f)
			} else {
				b.WriteString(strconv.Quote(f))
			}
		}
		b.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join("testdata", name), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSplitNameGolden(t *testing.T) {
	g := readGolden(t, goldenNames)
	for _, c := range g.cases {
		if len(c) != 3 {
			t.Fatalf("%s: case %q has no results; run the Nix test with -update", goldenNames, c)
		}
		if p, v := SplitName(c[0]); p != c[1] || v != c[2] {
			t.Errorf("SplitName(%q) = %q, %q; Nix says %q, %q", c[0], p, v, c[1], c[2])
		}
	}
	if len(g.cases) < 50 {
		t.Errorf("only %d golden names", len(g.cases))
	}
}

func TestCompareVersionsGolden(t *testing.T) {
	g := readGolden(t, goldenCompare)
	for _, c := range g.cases {
		if len(c) != 3 {
			t.Fatalf("%s: case %q has no result; run the Nix test with -update", goldenCompare, c)
		}
		want, err := strconv.Atoi(c[2])
		if err != nil {
			t.Fatal(err)
		}
		if got := CompareVersions(c[0], c[1]); got != want {
			t.Errorf("CompareVersions(%q, %q) = %d; Nix says %d", c[0], c[1], got, want)
		}
		if got := CompareVersions(c[1], c[0]); got != -want {
			t.Errorf("CompareVersions(%q, %q) = %d; want %d", c[1], c[0], got, -want)
		}
	}
}

func TestSplitVersionGolden(t *testing.T) {
	g := readGolden(t, goldenSplit)
	for _, c := range g.cases {
		if got := SplitVersion(c[0]); !slices.Equal(got, c[1:]) {
			t.Errorf("SplitVersion(%q) = %q; Nix says %q", c[0], got, c[1:])
		}
	}
}

func TestSplitName(t *testing.T) {
	for _, c := range []struct{ name, pname, version string }{
		{"hello-2.12.1", "hello", "2.12.1"},
		{"openssl-3.0.8-dev", "openssl", "3.0.8-dev"},
		{"font-bh-100dpi-1.0.3", "font-bh", "100dpi-1.0.3"},
		{"perl5.36.0-Test-Simple-1.302", "perl5.36.0-Test-Simple", "1.302"},
		{"foo-a1", "foo-a1", ""},
		{"foo-", "foo-", ""},
		{"foo--1", "foo", "-1"},
		{"foo-_1", "foo", "_1"},
		{"foo-\xe9", "foo", "\xe9"}, // a non-ASCII byte is not a letter
		{"", "", ""},
		{"-", "-", ""},
		{"-1", "", "1"},
	} {
		if p, v := SplitName(c.name); p != c.pname || v != c.version {
			t.Errorf("SplitName(%q) = %q, %q; want %q, %q", c.name, p, v, c.pname, c.version)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	// Each list is in increasing order by Nix (checked in the golden file
	// and the differential test); a version is equal only to itself.
	for _, order := range [][]string{
		{"1.0pre1", "1.0pre2", "1.0", "1.0a", "1.0.1", "1.1", "1.10", "2"},
		{"2147483648", "99999999999", "3", "10", "2147483647"},
		{"1.B", "1.a", "1.0"},
		{"0-unstable-2023-10-01", "0.1", "1"},
	} {
		for i, a := range order {
			for j, b := range order {
				want := 0
				if i < j {
					want = -1
				} else if i > j {
					want = 1
				}
				if got := CompareVersions(a, b); got != want {
					t.Errorf("CompareVersions(%q, %q) = %d; want %d", a, b, got, want)
				}
			}
		}
	}
	for _, eq := range [][2]string{
		{"1.01", "1.1"}, {"2023-01-01", "2023.1.1"}, {"1..0", "1.0"}, {"1.0-", "1.0"},
		{"1a", "1.a"}, {"0000000000000000000000001", "1"}, {"", "."}, {"-", ""},
	} {
		if got := CompareVersions(eq[0], eq[1]); got != 0 {
			t.Errorf("CompareVersions(%q, %q) = %d; want 0", eq[0], eq[1], got)
		}
	}
}

func TestSplitVersion(t *testing.T) {
	for _, c := range []struct {
		v    string
		want []string
	}{
		{"", nil},
		{".-", nil},
		{"1.0rc1", []string{"1", "0", "rc", "1"}},
		{"-1..2-", []string{"1", "2"}},
		{"1_2+é3", []string{"1", "_", "2", "+é", "3"}},
		{"2147483648", []string{"2147483648"}},
	} {
		if got := SplitVersion(c.v); !slices.Equal(got, c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("SplitVersion(%q) = %#v; want %#v", c.v, got, c.want)
		}
	}
}

// TestSplitVersionMatchesCompare checks that CompareVersions compares
// exactly the components SplitVersion returns.
func TestSplitVersionMatchesCompare(t *testing.T) {
	for _, c := range readGolden(t, goldenCompare).cases {
		a, b := SplitVersion(c[0]), SplitVersion(c[1])
		if got, want := CompareVersions(c[0], c[1]), CompareVersions(strings.Join(a, "."), strings.Join(b, ".")); got != want {
			// Joining with '.' changes nothing: separators are dropped and
			// the components stay the same.
			t.Errorf("CompareVersions(%q, %q) = %d but %d on the joined components", c[0], c[1], got, want)
		}
	}
}

func versionSeeds(f *testing.F) {
	for _, c := range readGolden(f, goldenCompare).cases {
		f.Add(c[0], c[1])
	}
	f.Add("1.0", "1.0.0")
	f.Add("2147483648", "")
	f.Add("pre", "")
	f.Add("\xff1", "1\x00")
}

// FuzzCompareVersions checks that the order is antisymmetric and
// reflexive, and that it agrees with a straightforward transcription of
// names.cc working on SplitVersion's components.
func FuzzCompareVersions(f *testing.F) {
	versionSeeds(f)
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, ba := CompareVersions(a, b), CompareVersions(b, a)
		if ab != -ba {
			t.Fatalf("CompareVersions(%q, %q) = %d but CompareVersions(%q, %q) = %d", a, b, ab, b, a, ba)
		}
		if ab < -1 || ab > 1 {
			t.Fatalf("CompareVersions(%q, %q) = %d", a, b, ab)
		}
		if got := CompareVersions(a, a); got != 0 {
			t.Fatalf("CompareVersions(%q, %q) = %d", a, a, got)
		}
		if want := referenceCompare(a, b); ab != want {
			t.Fatalf("CompareVersions(%q, %q) = %d; the reference says %d", a, b, ab, want)
		}
	})
}

// referenceCompare is compareVersions written differently: over the
// component lists, with strconv for string2Int<int>.
func referenceCompare(a, b string) int {
	ca, cb := SplitVersion(a), SplitVersion(b)
	lt := func(c1, c2 string) bool {
		n1, err1 := strconv.ParseInt(c1, 10, 32)
		n2, err2 := strconv.ParseInt(c2, 10, 32)
		// ParseInt accepts a sign; components never hold one.
		ok1, ok2 := err1 == nil && c1[0] != '+', err2 == nil && c2[0] != '+'
		switch {
		case ok1 && ok2:
			return n1 < n2
		case c1 == "" && ok2:
			return true
		case c1 == "pre" && c2 != "pre":
			return true
		case c2 == "pre":
			return false
		case ok2:
			return true
		case ok1:
			return false
		}
		return c1 < c2
	}
	for i := 0; i < max(len(ca), len(cb)); i++ {
		var c1, c2 string
		if i < len(ca) {
			c1 = ca[i]
		}
		if i < len(cb) {
			c2 = cb[i]
		}
		if lt(c1, c2) {
			return -1
		}
		if lt(c2, c1) {
			return 1
		}
	}
	return 0
}

// FuzzSplitName checks that SplitName cuts the name at a '-' that is
// followed by a non-letter, and that it is the first such '-'.
func FuzzSplitName(f *testing.F) {
	for _, c := range readGolden(f, goldenNames).cases {
		f.Add(c[0])
	}
	for _, c := range entryCases {
		f.Add(c.name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		pname, version := SplitName(name)
		if version == "" {
			if pname != name {
				t.Fatalf("SplitName(%q) = %q, %q: pname is not the whole name", name, pname, version)
			}
			for i := 0; i+1 < len(name); i++ {
				if name[i] == '-' && !isAlpha(name[i+1]) {
					t.Fatalf("SplitName(%q) did not split at %d", name, i)
				}
			}
			return
		}
		if pname+"-"+version != name {
			t.Fatalf("SplitName(%q) = %q, %q: pname-version is not the name", name, pname, version)
		}
		if isAlpha(version[0]) {
			t.Fatalf("SplitName(%q) = %q, %q: version starts with a letter", name, pname, version)
		}
		for i := 0; i < len(pname); i++ {
			if name[i] == '-' && !isAlpha(name[i+1]) {
				t.Fatalf("SplitName(%q) = %q, %q: the earlier '-' at %d splits", name, pname, version, i)
			}
		}
	})
}

var benchVersions = [][2]string{
	{"2.12.1", "2.12.2"},
	{"3.0.8", "3.0.8"},
	{"1.0pre1", "1.0"},
	{"23.11.20231129.057f9ae", "23.11.20231201.5a09cb4"},
	{"0-unstable-2023-10-01", "0-unstable-2023-10-15"},
	{"2147483648", "3"},
}

func BenchmarkCompareVersions(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := benchVersions[i%len(benchVersions)]
		CompareVersions(p[0], p[1])
	}
}

func TestCompareVersionsDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		for _, p := range benchVersions {
			CompareVersions(p[0], p[1])
			SplitName(p[0])
		}
	}); n != 0 {
		t.Errorf("CompareVersions and SplitName allocate %v times per run", n)
	}
}
