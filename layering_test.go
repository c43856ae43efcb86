package nixrepo_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/nixrepo/nixrepo"

// allowed lists, for each package, the project packages it may import.
// Imports point down: cmd → stages → store → nix. Stages never import each
// other; they talk through the bucket. The server, an HTTP adapter, decodes
// Content-Encoding bodies with internal/compress, the one decoder
// implementation.
var allowed = map[string][]string{
	"internal/nix":          {},
	"internal/nar":          {},
	"internal/compress":     {},
	"internal/config":       {"internal/nix"},
	"internal/nixtest":      {},
	"internal/upstreamtest": {"internal/nix"},
	"internal/s3test":       {},
	"internal/store":        {"internal/nix", "internal/work"},
	"internal/work":         {},
	"internal/tmpdir":       {},
	"ingest":                {"internal/nix", "internal/nar", "internal/compress", "internal/store", "internal/work"},
	"index":                 {"internal/nix", "internal/store", "internal/compress", "internal/work"},
	"search":                {"internal/nix", "internal/store", "index"},
	"site":                  {"internal/nix", "index"},
	"publish":               {"internal/nix", "internal/store", "index", "site"},
	"internal/server":       {"internal/nix", "internal/store", "internal/compress", "ingest", "index", "search"},
	"cmd/nixrepo":           {"*"},
	"":                      {},
}

// TestLayering fails when a package imports a project package it should not.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		rules, ok := allowed[pkg]
		if !ok && strings.HasPrefix(pkg, "bench/") {
			// Benchmark programs drive the whole stack.
			rules, ok = []string{"*"}, true
		}
		if !ok && strings.HasSuffix(pkg, "test") {
			// Test-support packages (storetest, …) sit beside what they test.
			rules, ok = []string{"*"}, true
		}
		if !ok {
			t.Errorf("package %q has no layering rule: add it to allowed", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if !permitted(rules, dep) {
				t.Errorf("%s imports %s, which the layering forbids (allowed: %v)", pkg, dep, rules)
			}
		}
	}
}

func permitted(rules []string, dep string) bool {
	for _, r := range rules {
		if r == "*" || r == dep {
			return true
		}
	}
	return false
}
