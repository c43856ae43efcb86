package site

import "testing"

// BenchmarkRender renders the site of a synthetic catalog of 5,000
// packages (about 15,000 versions) per iteration.
func BenchmarkRender(b *testing.B) {
	cat := SyntheticCatalog(5000, 1)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := Generate(cat, Options{}, func(f File) error { n += len(f.Data); return nil }); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(n))
	}
}
