package index

import (
	"context"
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
