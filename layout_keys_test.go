package nixrepo_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// layoutNames match string literals that name a bucket prefix, a reserved
// key or a file of the repository layout. Only internal/store may spell
// them (docs/layout.md): everything else asks store for a key.
var layoutNames = []*regexp.Regexp{
	regexp.MustCompile(`_nixrepo`),
	regexp.MustCompile(`_site`),
	regexp.MustCompile(`(^|[^A-Za-z0-9_-])channels/`),
	regexp.MustCompile(`(^|[^A-Za-z0-9_-])nar/`),
	regexp.MustCompile(`(^|[^A-Za-z0-9_-])log/`),
	regexp.MustCompile(`realisations/`),
	regexp.MustCompile(`\.narinfo($|[^A-Za-z0-9_])`),
	regexp.MustCompile(`\.ls($|[^A-Za-z0-9_])`),
	regexp.MustCompile(`\.doi($|[^A-Za-z0-9_])`),
	regexp.MustCompile(`nix-cache-info`),
	regexp.MustCompile(`channel\.json`),
	regexp.MustCompile(`nixexprs\.tar\.xz`),
	regexp.MustCompile(`nar-meta`),
	regexp.MustCompile(`journal/`),
	regexp.MustCompile(`catalog/`),
}

// layoutExempt are the folders whose code may name keys itself, and why.
var layoutExempt = map[string]string{
	// The owner.
	"internal/store": "the package that owns the layout",
	// Benchmarks drive nixrepo from outside, as Nix clients and uploaders
	// do: they name objects by the URLs a client sends (and seed folders
	// the way `nix copy` would), so they must not borrow the names from
	// the code they measure.
	"bench": "external clients of the layout",
	// Test-support packages stand for third parties (Nix, an upstream
	// binary cache) that speak Nix's layout on their own; taking the names
	// from store would make the tests agree with store by construction.
	// The layering test keeps them from importing store anyway.
	"internal/nixtest":      "plays Nix",
	"internal/upstreamtest": "plays an upstream binary cache",
	"testdata":              "data, not code",
}

// TestLayoutNamesOnlyInStore fails when a non-test Go file outside
// internal/store holds a string literal naming a bucket key. Keys hold no
// white space, so a literal with some is prose (a message, help text that
// describes the layout) and is not checked.
func TestLayoutNamesOnlyInStore(t *testing.T) {
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != "." {
				return filepath.SkipDir
			}
			if _, ok := layoutExempt[filepath.ToSlash(p)]; ok {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ImportSpec:
				return false // import paths ("log/slog") name packages
			case *ast.BasicLit:
				if n.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(n.Value)
				if err != nil {
					t.Errorf("%s: %v", fset.Position(n.Pos()), err)
					return true
				}
				if strings.ContainsAny(s, " \t\n") {
					return true // prose (a message, help text), not a key
				}
				for _, re := range layoutNames {
					if re.MatchString(s) {
						t.Errorf("%s: the literal %s names a bucket key (%s): ask internal/store for it", fset.Position(n.Pos()), n.Value, re)
						break
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("checked only %d files: is the walk rooted at the module?", files)
	}
}
