package index

// Differential test against the real Nix (2.8 on the development
// machines): generated names and versions are evaluated by
// builtins.parseDrvName, builtins.compareVersions and builtins.splitVersion
// in one nix-instantiate call and compared with SplitName, CompareVersions
// and SplitVersion. The test skips when nix-instantiate is not installed,
// except under CI (env CI set), where that is a failure.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nixrepo/nixrepo/internal/nixtest"
)

var update = flag.Bool("update", false, "rewrite the results in testdata/*.txt with what nix-instantiate says")

// maxExprLen keeps the expression below Linux's limit on one command-line
// argument (MAX_ARG_STRLEN, 128 KiB).
const maxExprLen = 120 << 10

// nixInstantiate returns the path of nix-instantiate and the environment
// to run it in: the project's Nix settings (docs/nix-protocols.md
// "Testing with the real Nix client") and fresh HOME and XDG_CACHE_HOME.
func nixInstantiate(t *testing.T) (string, []string) {
	t.Helper()
	path := nixtest.RequireTool(t, "nix-instantiate")
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NIX_CONFIG", "HOME", "XDG_CACHE_HOME", "NIX_PATH", "NIX_REMOTE", "NIX_STORE_DIR":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"NIX_CONFIG=experimental-features = nix-command\nbuild-users-group =\nsandbox = false\nsubstituters =",
		"HOME="+t.TempDir(),
		"XDG_CACHE_HOME="+t.TempDir(),
	)
	return path, env
}

// nixString quotes s as a Nix "…" string literal. '"', '\' and '$' (so
// also "${") are escaped, newline, carriage return and tab use \n, \r, \t.
// Nix strings are bytes and have no escape for other bytes: those,
// non-ASCII ones included, are written as they are. NUL cannot be passed
// in a command-line argument (nor held in a Nix 2.8 string).
func nixString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case 0:
			panic(fmt.Sprintf("nixString(%q): NUL byte", s))
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func TestNixString(t *testing.T) {
	for in, want := range map[string]string{
		`a"b\c`:     `"a\"b\\c"`,
		"${x} $y $": `"\${x} \$y \$"`,
		"a\nb\tc\r": `"a\nb\tc\r"`,
		"é\xff":     "\"é\xff\"",
	} {
		if got := nixString(in); got != want {
			t.Errorf("nixString(%q) = %q; want %q", in, got, want)
		}
	}
}

// caseGen generates names and versions, deterministically.
type caseGen struct{ r *rand.Rand }

func newCaseGen() *caseGen { return &caseGen{rand.New(rand.NewPCG(20231129, 28))} }

func (g *caseGen) pick(list []string) string { return list[g.r.IntN(len(list))] }

var (
	genNumbers = []string{
		"0", "1", "2", "3", "9", "10", "11", "99", "100", "01", "007", "00", "000",
		"2147483646", "2147483647", "2147483648", "2147483649", "02147483647", "4294967295", "4294967296",
		"9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616",
		"99999999999999999999999", "0000000000000000000000000001", "20231129", "20231129123456",
	}
	genWords = []string{
		"pre", "pre", "pre", "rc", "alpha", "beta", "a", "b", "z", "A", "B", "Z", "p", "git", "unstable",
		"dev", "bin", "man", "final", "PRE", "Pre", "pr", "prev", "pree", "_", "+", "_rc", "+git", "x",
		"é", "ü", "É", "日本", "😀", "~", "?", "=", "\xe9", "\xff", "\t", "\x01", " ", "\"", "\\", "${", "$", "'",
	}
	genSeps = []string{".", ".", ".", "-", "-", "", "", "..", "--", ".-", "-.", "...", "---"}
	// genNameChunks build "unstructured" names.
	genNameChunks = []string{
		"a", "b", "z", "foo", "lib", "pre", "A", "Q", "X11", "0", "1", "2", "42", "2147483648",
		"-", "-", "-", "-", "--", ".", ".", "_", "+", "?", "=", "-_", "-+", "-.", "-=", "-?",
		"-1", "-a", "-A", "-é", "-É", "é", "日本", "😀", "-\xe9", "\xe9", " ", "-\t", "\"", "${", "$",
	}
	genPnames = []string{
		"hello", "openssl", "font-bh", "perl5.36.0-Test-Simple", "python3.11-requests", "gtk+3", "libX11",
		"7zz", "nss-cacert", "xorg-server", "glibc-locales", "util-linux-minimal", "bash-interactive",
		"gcc-wrapper", "node_exporter", "python3.11-Django", "haskell-language-server", "R", "a", "x-",
		"foo-bar-baz", "ghc9.4.8-aeson", "linux_6_1", "texlive-combined-full", "0ad", "nix", "go",
	}
	genOutputs = []string{"dev", "bin", "lib", "man", "doc", "devdoc", "info", "debug", "static", "out",
		"dist", "modules", "p15", "2", "unknown"}
)

// version is a generated version: tokens with separators before, between
// and after them (len(seps) == len(toks)+1).
type version struct{ toks, seps []string }

func (v version) String() string {
	var b strings.Builder
	for i, t := range v.toks {
		b.WriteString(v.seps[i] + t)
	}
	b.WriteString(v.seps[len(v.seps)-1])
	return b.String()
}

func (g *caseGen) token() string {
	switch n := g.r.IntN(20); {
	case n < 6:
		return g.pick(genNumbers)
	case n < 11:
		return strconv.Itoa(g.r.IntN(1000))
	case n < 12:
		// A random run of digits, up to 25 long, sometimes with leading zeros.
		d := make([]byte, 1+g.r.IntN(25))
		for i := range d {
			d[i] = byte('0' + g.r.IntN(10))
		}
		return string(d)
	default:
		return g.pick(genWords)
	}
}

func (g *caseGen) sep() string { return g.pick(genSeps) }

func (g *caseGen) version() version {
	n := g.r.IntN(7)
	v := version{toks: make([]string, n), seps: make([]string, n+1)}
	for i := range v.toks {
		v.toks[i] = g.token()
		if i > 0 {
			v.seps[i] = g.sep()
		}
	}
	if g.r.IntN(8) == 0 {
		v.seps[0] = g.sep()
	}
	if g.r.IntN(8) == 0 {
		v.seps[n] = g.sep()
	}
	return v
}

// mutate returns a copy of v with one or two small changes, so that the
// pair (v, mutated) is decided late or not at all.
func (g *caseGen) mutate(v version) version {
	w := version{toks: slices.Clone(v.toks), seps: slices.Clone(v.seps)}
	for range 1 + g.r.IntN(2) {
		n := len(w.toks)
		switch op := g.r.IntN(9); {
		case op == 0 && n > 0:
			w.toks[g.r.IntN(n)] = g.token()
		case op == 1:
			w.toks = append(w.toks, g.token())
			w.seps[n] = g.pick([]string{".", "-", ""})
			w.seps = append(w.seps, "")
		case op == 2 && n > 0:
			w.toks, w.seps = w.toks[:n-1], w.seps[:n]
		case op == 3:
			w.seps[g.r.IntN(n+1)] = g.sep()
		case op == 4 && n > 0:
			i := g.r.IntN(n)
			w.toks[i] = "0" + w.toks[i]
		case op == 5:
			i := g.r.IntN(n + 1)
			w.toks = slices.Insert(w.toks, i, "pre")
			w.seps = slices.Insert(w.seps, i+1, ".")
		case op == 6 && n > 0:
			i := g.r.IntN(n)
			if x, err := strconv.ParseUint(w.toks[i], 10, 64); err == nil && x < 1<<63 {
				w.toks[i] = strconv.FormatUint(x+1, 10)
			} else {
				w.toks[i] += "0"
			}
		case op == 7 && n > 0:
			i := g.r.IntN(n)
			w.toks[i] = strings.ToUpper(w.toks[i])
		default:
			w.toks = append(w.toks, "pre")
			w.seps[n] = ""
			w.seps = append(w.seps, "")
		}
	}
	return w
}

func (g *caseGen) name() string {
	if g.r.IntN(5) < 2 {
		s := g.pick(genPnames) + "-" + g.version().String()
		if g.r.IntN(3) == 0 {
			s += "-" + g.pick(genOutputs)
		}
		return s
	}
	var b strings.Builder
	for range 1 + g.r.IntN(10) {
		b.WriteString(g.pick(genNameChunks))
	}
	return b.String()
}

// diffCases are the inputs of the differential test.
type diffCases struct {
	names []string
	pairs [][2]string
}

func buildDiffCases(golden map[string]goldenFile) diffCases {
	var dc diffCases
	for _, c := range golden[goldenNames].cases {
		dc.names = append(dc.names, c[0])
	}
	for _, c := range golden[goldenSplit].cases {
		dc.names = append(dc.names, c[0]) // splitVersion is applied to every name
	}
	for _, c := range entryCases {
		dc.names = append(dc.names, c.name, strings.TrimSuffix(c.name, ".drv"))
	}
	for _, c := range golden[goldenCompare].cases {
		dc.pairs = append(dc.pairs, [2]string{c[0], c[1]})
	}
	// Every pair of a small set of interesting components, bare and after "1.".
	small := []string{"", "0", "1", "01", "2", "10", "pre", "a", "B", "rc1", "2147483647", "2147483648",
		"9223372036854775808", "é", "_"}
	for _, x := range small {
		for _, y := range small {
			dc.pairs = append(dc.pairs, [2]string{x, y}, [2]string{"1." + x, "1." + y})
		}
	}
	g := newCaseGen()
	for range 1100 {
		dc.names = append(dc.names, g.name())
	}
	for range 1100 {
		a := g.version()
		b := g.mutate(a)
		if g.r.IntN(4) == 0 {
			b = g.version()
		}
		dc.pairs = append(dc.pairs, [2]string{a.String(), b.String()})
	}
	return dc
}

// expr is the Nix expression evaluating every case. For each name it
// returns parseDrvName's name and version with their lengths in bytes and
// splitVersion's components with theirs (the lengths make the comparison
// exact for bytes that are not valid UTF-8, which the JSON decoder
// replaces); compareVersions of each name with the next; and for each
// version pair compareVersions in both orders and splitVersion of both.
func (dc diffCases) expr() string {
	var b strings.Builder
	b.WriteString("let\n  b = builtins;\n  n = [\n")
	for _, s := range dc.names {
		b.WriteString(nixString(s) + "\n")
	}
	b.WriteString("];\n  v = [\n")
	for _, p := range dc.pairs {
		b.WriteString(nixString(p[0]) + " " + nixString(p[1]) + "\n")
	}
	b.WriteString(`];
  pd = s: let d = b.parseDrvName s; in [ d.name d.version (b.stringLength d.name) (b.stringLength d.version) ];
  sv = s: let c = b.splitVersion s; in [ c (map b.stringLength c) ];
in {
  names = map (s: [ (pd s) (sv s) ]) n;
  adjacent = b.genList (i: b.compareVersions (b.elemAt n i) (b.elemAt n (i + 1))) (b.length n - 1);
  pairs = b.genList (i: let x = b.elemAt v (2 * i); y = b.elemAt v (2 * i + 1); in
    [ (b.compareVersions x y) (b.compareVersions y x) (sv x) (sv y) ]) (b.length v / 2);
}
`)
	return b.String()
}

// nixResults is the JSON nix-instantiate prints for expr.
type nixResults struct {
	Names []struct {
		DrvName drvNameResult
		Split   splitResult
	}
	Adjacent []int
	Pairs    []struct {
		AB, BA         int
		SplitA, SplitB splitResult
	}
}

type drvNameResult struct {
	Name, Version       string
	NameLen, VersionLen int
}

type splitResult struct {
	Comps []string
	Lens  []int
}

// The results are JSON lists; decode them positionally.
func (r *nixResults) UnmarshalJSON(data []byte) error {
	var raw struct {
		Names    [][2]json.RawMessage
		Adjacent []int
		Pairs    [][4]json.RawMessage
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	r.Adjacent = raw.Adjacent
	r.Names = make([]struct {
		DrvName drvNameResult
		Split   splitResult
	}, len(raw.Names))
	for i, n := range raw.Names {
		var d [4]json.RawMessage
		if err := json.Unmarshal(n[0], &d); err != nil {
			return err
		}
		dn := &r.Names[i].DrvName
		for j, dst := range []any{&dn.Name, &dn.Version, &dn.NameLen, &dn.VersionLen} {
			if err := json.Unmarshal(d[j], dst); err != nil {
				return err
			}
		}
		if err := unmarshalSplit(n[1], &r.Names[i].Split); err != nil {
			return err
		}
	}
	r.Pairs = make([]struct {
		AB, BA         int
		SplitA, SplitB splitResult
	}, len(raw.Pairs))
	for i, p := range raw.Pairs {
		q := &r.Pairs[i]
		if err := json.Unmarshal(p[0], &q.AB); err != nil {
			return err
		}
		if err := json.Unmarshal(p[1], &q.BA); err != nil {
			return err
		}
		if err := unmarshalSplit(p[2], &q.SplitA); err != nil {
			return err
		}
		if err := unmarshalSplit(p[3], &q.SplitB); err != nil {
			return err
		}
	}
	return nil
}

func unmarshalSplit(data []byte, s *splitResult) error {
	var raw [2]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[0], &s.Comps); err != nil {
		return err
	}
	return json.Unmarshal(raw[1], &s.Lens)
}

// asJSON is what a Go string becomes after Nix prints it as JSON and Go
// decodes that: each byte that is not part of valid UTF-8 turns into
// U+FFFD.
func asJSON(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string([]rune(s))
}

// sameString reports whether Go's s is the string Nix printed as got with
// byte length n.
func sameString(s, got string, n int) bool { return asJSON(s) == got && len(s) == n }

func sameSplit(comps []string, got splitResult) bool {
	if len(comps) != len(got.Comps) || len(comps) != len(got.Lens) {
		return false
	}
	for i, c := range comps {
		if !sameString(c, got.Comps[i], got.Lens[i]) {
			return false
		}
	}
	return true
}

func TestNixDifferential(t *testing.T) {
	nixPath, env := nixInstantiate(t)
	golden := map[string]goldenFile{}
	for _, f := range []string{goldenNames, goldenCompare, goldenSplit} {
		golden[f] = readGolden(t, f)
	}
	dc := buildDiffCases(golden)
	if len(dc.names) < 1000 || len(dc.pairs) < 1000 {
		t.Fatalf("only %d names and %d version pairs; want at least 1000 of each", len(dc.names), len(dc.pairs))
	}
	expr := dc.expr()
	if len(expr) > maxExprLen {
		t.Fatalf("the expression is %d bytes, more than fits in one argument (%d)", len(expr), maxExprLen)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nixPath, "--eval", "--strict", "--json", "-E", expr)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("nix-instantiate --eval --strict --json -E <%d-byte expression>: %v\n%s", len(expr), err, stderr.String())
	}
	elapsed := time.Since(start)
	var res nixResults
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("decoding nix-instantiate's output: %v\n%.2000s", err, stdout.String())
	}
	if len(res.Names) != len(dc.names) || len(res.Pairs) != len(dc.pairs) || len(res.Adjacent) != len(dc.names)-1 {
		t.Fatalf("Nix returned %d names, %d pairs, %d adjacent comparisons; want %d, %d, %d",
			len(res.Names), len(res.Pairs), len(res.Adjacent), len(dc.names), len(dc.pairs), len(dc.names)-1)
	}

	var nDrvName, nCompare, nSplit, mismatches int
	mismatch := func(format string, args ...any) {
		mismatches++
		if mismatches <= 50 {
			t.Errorf(format, args...)
		}
	}
	for i, name := range dc.names {
		r := res.Names[i]
		nDrvName++
		if p, v := SplitName(name); !sameString(p, r.DrvName.Name, r.DrvName.NameLen) || !sameString(v, r.DrvName.Version, r.DrvName.VersionLen) {
			mismatch("SplitName(%q) = %q, %q; Nix: %q (%d bytes), %q (%d bytes)", name, p, v,
				r.DrvName.Name, r.DrvName.NameLen, r.DrvName.Version, r.DrvName.VersionLen)
		}
		nSplit++
		if got := SplitVersion(name); !sameSplit(got, r.Split) {
			mismatch("SplitVersion(%q) = %q; Nix: %q %v", name, got, r.Split.Comps, r.Split.Lens)
		}
		if i+1 < len(dc.names) {
			nCompare++
			if got := CompareVersions(name, dc.names[i+1]); got != res.Adjacent[i] {
				mismatch("CompareVersions(%q, %q) = %d; Nix: %d", name, dc.names[i+1], got, res.Adjacent[i])
			}
		}
	}
	for i, p := range dc.pairs {
		r := res.Pairs[i]
		nCompare += 2
		if got := CompareVersions(p[0], p[1]); got != r.AB {
			mismatch("CompareVersions(%q, %q) = %d; Nix: %d", p[0], p[1], got, r.AB)
		}
		if got := CompareVersions(p[1], p[0]); got != r.BA {
			mismatch("CompareVersions(%q, %q) = %d; Nix: %d", p[1], p[0], got, r.BA)
		}
		nSplit += 2
		for j, sr := range []splitResult{r.SplitA, r.SplitB} {
			if got := SplitVersion(p[j]); !sameSplit(got, sr) {
				mismatch("SplitVersion(%q) = %q; Nix: %q %v", p[j], got, sr.Comps, sr.Lens)
			}
		}
	}
	var results [3]int
	for _, r := range res.Pairs {
		results[r.AB+1]++
	}
	t.Logf("version pairs by Nix's verdict: %d older, %d equal, %d newer", results[0], results[1], results[2])
	t.Logf("one nix-instantiate call (%d-byte expression, %v): compared %d parseDrvName, %d compareVersions (%d version pairs in both orders and %d adjacent names) and %d splitVersion results; %d mismatches",
		len(expr), elapsed.Round(time.Millisecond), nDrvName, nCompare, len(dc.pairs), len(dc.names)-1, nSplit, mismatches)
	if mismatches > 0 {
		t.Errorf("%d mismatches with Nix", mismatches)
	}

	checkGolden(t, golden, dc, res)
}

// checkGolden compares the golden files' results with what Nix said (the
// golden inputs come first in dc), or rewrites them with -update.
func checkGolden(t *testing.T, golden map[string]goldenFile, dc diffCases, res nixResults) {
	gn, gs, gc := golden[goldenNames], golden[goldenSplit], golden[goldenCompare]
	for _, g := range []goldenFile{gn, gs, gc} {
		for _, c := range g.cases {
			for _, f := range c {
				if !utf8.ValidString(f) {
					t.Fatalf("golden case %q is not valid UTF-8; golden files hold only exact JSON round trips", c)
				}
			}
		}
	}
	var want [3][][]string
	for i, c := range gn.cases {
		d := res.Names[i].DrvName
		want[0] = append(want[0], []string{c[0], d.Name, d.Version})
	}
	for i, c := range gs.cases {
		want[1] = append(want[1], append([]string{c[0]}, res.Names[len(gn.cases)+i].Split.Comps...))
	}
	for i, c := range gc.cases {
		want[2] = append(want[2], []string{c[0], c[1], strconv.Itoa(res.Pairs[i].AB)})
	}
	for i, g := range []goldenFile{gn, gs, gc} {
		file := []string{goldenNames, goldenSplit, goldenCompare}[i]
		if *update {
			g.cases = want[i]
			writeGolden(t, file, g)
			continue
		}
		for j, c := range g.cases {
			if !slices.Equal(c, want[i][j]) {
				t.Errorf("%s: golden case %q, but Nix says %q (rewrite with -update)", file, c, want[i][j])
			}
		}
	}
	if *update {
		t.Logf("rewrote the golden files")
	}
}
