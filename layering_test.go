package nixrepo_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/nixrepo/nixrepo"

// allowed lists, for each package, the project packages its non-test code
// may import. Imports point down the table in docs/design.md: cmd → server →
// stages → store → nix. Stages never import each other; they talk through the
// bucket. ingest/channel, the channel snapshots, is part of the ingest stage:
// it admits with ingest's error kinds, and ingest knows nothing of channels.
// The server is the adapter on top: it drives ingest, ingest/channel, index
// and search, and decodes Content-Encoding bodies with internal/compress, the
// one decoder implementation.
var allowed = map[string][]string{
	"internal/nix":      {},
	"internal/nar":      {},
	"internal/compress": {},
	"internal/config":   {"internal/nix"},
	"internal/store":    {"internal/nix", "internal/work"},
	"internal/work":     {},
	"internal/tmpdir":   {},
	"ingest":            {"internal/nix", "internal/nar", "internal/compress", "internal/store", "internal/work"},
	"ingest/channel":    {"internal/nix", "internal/compress", "internal/store", "ingest"},
	"index":             {"internal/nix", "internal/store", "internal/compress", "internal/work"},
	"search":            {"internal/nix", "internal/store", "index"},
	"site":              {"internal/nix", "index"},
	"publish":           {"internal/nix", "internal/store", "index", "site"},
	"server":            {"internal/nix", "internal/store", "internal/compress", "ingest", "ingest/channel", "index", "search"},
	"cmd/nixrepo":       {"*"},
	// Whole-system tests of the nixrepo binary; the package has no code.
	"e2e": {"*"},
	"":    {},
}

// testSupport lists the packages that exist for tests only, each with the
// project packages it may import. Only test code, benchmark programs and
// other test-support packages may import them.
var testSupport = map[string][]string{
	// Real Nix clients (2.8 on the host, 2.26 in a chroot) and the rule for
	// any program a test needs: no project code, so every package's tests
	// may use it.
	"internal/nixtest": {},
	// A fake upstream binary cache serving signed narinfos.
	"internal/upstreamtest": {"internal/nix"},
	// A real S3-compatible server (versitygw) for the store's backend tests;
	// a missing server is nixtest's missing-program rule.
	"internal/s3test": {"internal/nixtest"},
	// The conformance suite every store backend passes.
	"internal/store/storetest": {"internal/store"},
	// NAR streams built for tests (a file, many symlinks, raw tokens).
	"internal/nar/nartest": {},
	// The peak heap of a function, for tests that bound memory.
	"internal/memtest": {},
}

// testExtra lists what a package's tests may import beyond the package
// itself, its own rule and the test-support packages, each with its reason.
var testExtra = map[string][]string{
	// Publishing is tested on repositories filled as a run fills them.
	"publish": {"ingest"},
}

// TestLayering fails when a package, or its tests, imports a project package
// it should not, and when a package has no rule.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}}{{range .Imports}} {{.}}{{end}} |{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}`,
		"./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		code, tests, _ := strings.Cut(line, "|")
		fields := strings.Fields(code)
		pkg := rel(fields[0])
		rules, support := rulesFor(pkg)
		if rules == nil {
			t.Errorf("package %q has no layering rule: add it to allowed or testSupport", pkg)
			continue
		}
		for _, dep := range projectImports(fields[1:]) {
			_, depIsSupport := testSupport[dep]
			switch {
			case depIsSupport && !support && !permitted(rules, "*"):
				t.Errorf("%s imports the test-support package %s outside its tests", pkg, dep)
			case !permitted(rules, dep):
				t.Errorf("%s imports %s, which the layering forbids (allowed: %v)", pkg, dep, rules)
			}
		}
		for _, dep := range projectImports(strings.Fields(tests)) {
			_, depIsSupport := testSupport[dep]
			if dep == pkg || depIsSupport || permitted(rules, dep) || permitted(testExtra[pkg], dep) {
				continue
			}
			t.Errorf("tests of %s import %s, which the layering forbids (allowed: the package, %v, test-support packages, %v)",
				pkg, dep, rules, testExtra[pkg])
		}
	}
}

// rulesFor returns a package's rule and whether it is test support; nil
// when it has none.
func rulesFor(pkg string) ([]string, bool) {
	if r, ok := testSupport[pkg]; ok {
		return append([]string{}, r...), true
	}
	if r, ok := allowed[pkg]; ok {
		return append([]string{}, r...), false
	}
	if strings.HasPrefix(pkg, "bench/") {
		// Benchmark programs drive the whole stack, as a user does.
		return []string{"*"}, false
	}
	return nil, false
}

func rel(importPath string) string {
	return strings.TrimPrefix(strings.TrimPrefix(importPath, module), "/")
}

func projectImports(imports []string) []string {
	var out []string
	for _, imp := range imports {
		if strings.HasPrefix(imp, module+"/") {
			out = append(out, rel(imp))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func permitted(rules []string, dep string) bool {
	return slices.Contains(rules, "*") || slices.Contains(rules, dep)
}
