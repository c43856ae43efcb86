package index

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nixrepo/nixrepo/internal/store"
)

// Go benchmarks on a small synthetic folder bucket (bench/catalog.sh runs
// the full-size ones on Debian's package list):
//
//	go test ./index -run '^$' -bench . -benchtime 3x

// benchBucket writes n store paths (packages with 1–5 versions of 1–3
// outputs) into a folder bucket.
func benchBucket(b *testing.B, n int) *fixture {
	b.Helper()
	st, err := store.Open(context.Background(), "file://"+b.TempDir(), "", false)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	f := &fixture{t: b, ctx: context.Background(), st: st}
	rng := rand.New(rand.NewPCG(1, 2))
	outs := []string{"", "-dev", "-man"}
	for i, p := 0, 0; i < n; p++ {
		for v := 0; v < 1+rng.IntN(5) && i < n; v++ {
			for o := 0; o < 1+rng.IntN(3) && i < n; o++ {
				f.add("main", fmt.Sprintf("bench-pkg%d-1.%d%s", p, v, outs[o]), "", 1000)
				i++
			}
		}
	}
	return f
}

func BenchmarkBuild20k(b *testing.B) {
	f := benchBucket(b, 20000)
	dir := b.TempDir()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Build(f.ctx, f.st, repoInfos("main"), &BuildOptions{IndexDir: dir}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(20000/(b.Elapsed().Seconds()/float64(b.N)), "paths/s")
}

func BenchmarkUpdateOnePath20k(b *testing.B) {
	f := benchBucket(b, 20000)
	dir := b.TempDir()
	if _, err := Build(f.ctx, f.st, repoInfos("main"), &BuildOptions{IndexDir: dir}); err != nil {
		b.Fatal(err)
	}
	i := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		f.add("main", fmt.Sprintf("bench-pkg7-9.%d", i), "", 1000)
		i++
		b.StartTimer()
		rep, err := Update(f.ctx, f.st, repoInfos("main"), &BuildOptions{IndexDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Full || len(rep.Changed) != 1 {
			b.Fatalf("not incremental: %+v", rep)
		}
	}
}

// nixpkgsLikePackagesJSON is a packages.json of n packages shaped like
// nixpkgs' (each entry's meta carries licenses, maintainers and 40
// platforms, most of which the catalog skips).
func nixpkgsLikePackagesJSON(n int) []byte {
	platforms := []string{}
	for _, a := range []string{"x86_64", "aarch64", "i686", "armv7l", "riscv64", "powerpc64le", "mips64el", "s390x"} {
		for _, o := range []string{"linux", "darwin", "freebsd", "netbsd", "openbsd"} {
			platforms = append(platforms, a+"-"+o)
		}
	}
	pk := map[string]any{}
	for i := range n {
		name := fmt.Sprintf("pkg%d", i)
		pk[fmt.Sprintf("python312Packages.%s", name)] = map[string]any{
			"name": name + "-1.2." + fmt.Sprint(i%17), "pname": name, "version": "1.2." + fmt.Sprint(i%17), "system": "x86_64-linux", "outputName": "out", "outputs": map[string]any{"out": nil, "dev": nil},
			"meta": map[string]any{
				"available": true, "broken": false, "insecure": false, "unfree": false, "unsupported": false,
				"description":     "A library that does something useful for package " + name,
				"longDescription": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.",
				"homepage":        "https://example.org/" + name,
				"license":         []any{map[string]any{"deprecated": false, "free": true, "fullName": "MIT License", "redistributable": true, "shortName": "mit", "spdxId": "MIT", "url": "https://spdx.org/licenses/MIT.html"}},
				"maintainers":     []any{map[string]any{"email": "a@b.c", "github": "someone", "githubId": 12345, "name": "Some One"}, map[string]any{"email": "d@e.f", "github": "other", "githubId": 678, "name": "Other"}},
				"platforms":       platforms, "position": "pkgs/development/python-modules/" + name + "/default.nix:42", "outputsToInstall": []string{"out"},
				"name": name + "-1.2", "changelog": "https://example.org/" + name + "/CHANGELOG.md", "mainProgram": name,
			},
		}
	}
	b, _ := json.Marshal(map[string]any{"version": 2, "packages": pk})
	return b
}

// BenchmarkParsePackagesJSON: 20k nixpkgs-like packages (~35 MB of JSON).
// At 120k packages (206 MB) this parser took 0.95–1.27 s where
// encoding/json's streaming decoder, used before, took 2.5–2.9 s.
func BenchmarkParsePackagesJSON(b *testing.B) {
	raw := nixpkgsLikePackagesJSON(20000)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		m, err := parsePackagesJSON(bytes.NewReader(raw))
		if err != nil || len(m) != 20000 {
			b.Fatalf("%d packages, %v", len(m), err)
		}
	}
}
