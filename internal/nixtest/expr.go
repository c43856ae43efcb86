package nixtest

import (
	"fmt"
	"strings"
)

// closureScript builds one node of ClosureExpr. It runs under /bin/sh with no PATH, so external
// programs are called by absolute path; the derivation passes name, tag and deps (the
// dependencies' output paths, space-separated) as environment variables. It must not contain
// "${" or "”" since it is embedded in a Nix ”…” string.
const closureScript = `set -e
/bin/mkdir -p "$out/bin" "$out/lib" "$out/share/doc"
printf '%s\n' "$tag" > "$out/share/doc/tag"
printf 'name: %s\ntag: %s\n' "$name" "$tag" > "$out/share/doc/README"
printf '#!/bin/sh\necho %s\n' "$name" > "$out/bin/hello"
/bin/chmod 0755 "$out/bin/hello"
/bin/ln -s share/doc/README "$out/README"
i=0
for d in $deps; do
  printf '%s\n' "$d" >> "$out/lib/deps"
  /bin/ln -s "$d" "$out/lib/dep$i"
  i=$((i+1))
done
`

// ClosureExpr returns a Nix expression that evaluates to the top derivation of a closure of n ≥ 3
// derivations named "nixtest-node<i>-1.0". Node 0 has no references; node i ≥ 1 references node
// i-1 and node 0 (so the graph has both a chain and diamonds, and the top's closure is all n
// paths). Each output is a directory with share/doc/{README,tag}, an executable bin/hello, a
// relative symlink README -> share/doc/README and, for i ≥ 1, lib/deps listing the references
// and absolute symlinks lib/dep<j> to them. The contents include tag, so different tags give
// different store paths; tag may be any string without NUL. Use a tag unique to the test (e.g.
// t.Name()): the same tag in two concurrently running test binaries costs ~5 s of Nix lock polling.
//
// The derivations use builder /bin/sh and builtins.currentSystem and build in well under a
// second.
func ClosureExpr(tag string, n int) string {
	if n < 3 {
		panic(fmt.Sprintf("nixtest.ClosureExpr: n = %d, need n >= 3", n))
	}
	var b strings.Builder
	b.WriteString("let\n")
	fmt.Fprintf(&b, "  tag = %s;\n", nixString(tag))
	b.WriteString("  mk = name: deps: derivation {\n")
	b.WriteString("    inherit name deps tag;\n")
	b.WriteString("    system = builtins.currentSystem;\n")
	b.WriteString("    builder = \"/bin/sh\";\n")
	b.WriteString("    args = [ \"-c\" ''\n")
	for _, line := range strings.SplitAfter(closureScript, "\n") {
		if line != "" {
			b.WriteString("      " + line)
		}
	}
	b.WriteString("    '' ];\n")
	b.WriteString("  };\n")
	b.WriteString("  node0 = mk \"nixtest-node0-1.0\" [ ];\n")
	for i := 1; i < n; i++ {
		deps := fmt.Sprintf("node%d", i-1)
		if i >= 2 {
			deps += " node0"
		}
		fmt.Fprintf(&b, "  node%d = mk \"nixtest-node%d-1.0\" [ %s ];\n", i, i, deps)
	}
	fmt.Fprintf(&b, "in\nnode%d\n", n-1)
	return b.String()
}

// nixString quotes s as a Nix "…" string literal.
func nixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}
