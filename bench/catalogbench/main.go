// Command catalogbench drives bench/catalog.sh: it generates a synthetic
// bucket from a real package list and measures the package catalog, its
// search index and the search API on it.
//
//	catalogbench gen   -out DIR -paths N < list.tsv   write the bucket (see gen.go)
//	catalogbench build -store DIR -index IDX [-baseline [-runs N]]
//	                   full build of catalog + index (none in the bucket
//	                   before); with -baseline, then bleve's own NewBuilder
//	                   indexing the same documents, alternating N times
//	catalogbench incr  -store DIR -index IDX -n 3     +1 narinfo, then index.Update, n times
//	catalogbench serve -store DIR -index IDX -ready F the search API on 127.0.0.1 (F gets the URL)
//	catalogbench query -url URL -names F -n 3000      sequential GETs of /api/search, latency percentiles
//
// Results are printed as one JSON object per line (and a human line on
// stderr).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/blevesearch/bleve/v2"
	_ "gocloud.dev/blob/fileblob"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/search"
	"github.com/nixrepo/nixrepo/server"
)

var repos = []index.RepoInfo{{Name: "main", Type: "local"}, {Name: "staging", Type: "local"}}

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: catalogbench gen|build|incr|serve|query [flags]"))
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "gen":
		gen(args)
	case "build":
		build(args)
	case "journal":
		journal(args)
	case "incr":
		incr(args)
	case "serve":
		serve(args)
	case "query":
		queryBench(args)
	default:
		fail(fmt.Errorf("unknown subcommand %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "catalogbench:", err)
	os.Exit(1)
}

func emit(v map[string]any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func openStore(dir string) *store.Store {
	st, err := store.Open(context.Background(), "file://"+dir, "", true)
	if err != nil {
		fail(err)
	}
	return st
}

func build(args []string) {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	dir := fs.String("store", "", "bucket folder")
	idx := fs.String("index", "", "index folder")
	baseline := fs.Bool("baseline", false, "also time bleve's NewBuilder alone on the same documents")
	runs := fs.Int("runs", 1, "with -baseline, alternate this many builds and bleve-alone runs and compare medians (the machine is noisy)")
	verbose := fs.Bool("v", false, "phase timings on stderr")
	prof := fs.String("cpuprofile", "", "write a CPU profile of the first build (the last one with -runs)")
	pathDocs := fs.Bool("pathdocs", false, "with -baseline, also time NewBuilder on one document per store path")
	noJournal := fs.Bool("nojournal", false, "delete the path journal first: every narinfo is read (a bucket written by other tools)")
	fs.Parse(args)
	st := openStore(*dir)
	ctx := context.Background()
	lvl := slog.LevelWarn
	if *verbose {
		lvl = slog.LevelDebug
	}
	opts := &index.BuildOptions{IndexDir: *idx, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))}
	if *noJournal {
		for _, r := range repos {
			if err := dropJournal(ctx, st, r.Name); err != nil {
				fail(err)
			}
		}
	}
	jobjects := journalObjects(ctx, st)
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(896 << 20) // as "nixrepo index" does
	}
	// One full build: from no index and no catalog in the bucket (what a
	// first build or a rebuild after losing both does).
	once := func(profile string) (*index.Catalog, float64, float64) {
		os.RemoveAll(*idx)
		if err := dropCatalog(ctx, st); err != nil {
			fail(err)
		}
		if profile != "" {
			f, err := os.Create(profile)
			if err != nil {
				fail(err)
			}
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		// Each timed run starts from the same state: the heap collected and
		// its free pages returned to the OS (else one run's leftovers, and
		// the scavenger returning them, land in the next one's time).
		debug.FreeOSMemory()
		start, cpu0 := time.Now(), cpuSeconds()
		cat, err := index.Build(ctx, st, repos, opts)
		if err != nil {
			fail(err)
		}
		return cat, time.Since(start).Seconds(), cpuSeconds() - cpu0
	}
	first := *prof
	if *baseline && *runs > 1 {
		first = "" // profile the last build: a warm process, like the others but the first
	}
	cat, full, fullCPU := once(first)
	s := cat.Stats
	narinfos := 0
	for _, r := range cat.Repos {
		narinfos += r.Paths
	}
	res := map[string]any{"op": "build", "seconds": full, "cpuSeconds": fullCPU, "narinfos": narinfos, "storePaths": s.Paths + s.Derivations + s.Sources + s.Other,
		"packages": s.Packages, "versions": s.Versions, "docsPerSec": float64(s.Packages) / full, "journalObjects": jobjects}
	fmt.Fprintf(os.Stderr, "build: %d narinfos, %d packages in %.2fs (path journal: %d objects)\n", narinfos, s.Packages, full, jobjects)
	if *baseline {
		// bleve alone, the same documents and mapping, one NewBuilder.
		docs := make([]any, len(cat.Packages))
		var perPath []any
		for i := range cat.Packages {
			p := &cat.Packages[i]
			docs[i] = index.DocOf(p)
			if *pathDocs {
				for _, v := range p.Versions {
					for _, pi := range v.Paths {
						perPath = append(perPath, map[string]any{"name": strings.ToLower(p.Name), "words": p.Name,
							"versions": []string{v.Version}, "latest": v.Version, "repos": pi.Repos, "s": pi.StorePath + " " + pi.Output})
					}
				}
			}
		}
		cat = nil
		builds, buildCPU := []float64{full}, []float64{fullCPU}
		var alone, aloneCPU []float64
		for r := 0; r < *runs; r++ {
			if r > 0 {
				profile := ""
				if r == *runs-1 {
					profile = *prof
				}
				_, t, c := once(profile)
				builds, buildCPU = append(builds, t), append(buildCPU, c)
			}
			t, c := bleveAlone(*idx, docs)
			alone, aloneCPU = append(alone, t), append(aloneCPU, c)
			fmt.Fprintf(os.Stderr, "run %d: build %.2fs (%.2f CPU s), bleve NewBuilder alone %.2fs (%.2f CPU s)\n", r+1, builds[r], buildCPU[r], t, c)
		}
		bs, bcpu := median(alone), median(aloneCPU)
		ms, mcpu := median(builds), median(buildCPU)
		res["runs"], res["buildSeconds"], res["bleveRuns"] = *runs, builds, alone
		res["medianSeconds"], res["medianCPUSeconds"] = ms, mcpu
		res["bleveSeconds"], res["bleveCPUSeconds"] = bs, bcpu
		res["bleveDocsPerSec"] = float64(len(docs)) / bs
		res["ratio"] = bs / ms
		res["cpuRatio"] = bcpu / mcpu
		fmt.Fprintf(os.Stderr, "bleve NewBuilder alone: %d docs in %.2fs (%.2f CPU s); medians of %d: build %.2fs, bleve %.2fs, ratio %.2f\n",
			len(docs), bs, bcpu, *runs, ms, bs, bs/ms)
		if *pathDocs {
			ps, pcpu := bleveAlone(*idx, perPath)
			res["perPathDocs"], res["perPathSeconds"], res["perPathCPUSeconds"] = len(perPath), ps, pcpu
			fmt.Fprintf(os.Stderr, "bleve NewBuilder alone, one doc per store path: %d docs in %.2fs\n", len(perPath), ps)
		}
	}
	emit(res)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// dropCatalog deletes the persisted catalog, so a build writes it all.
func dropCatalog(ctx context.Context, st *store.Store) error {
	var keys []string
	err := st.List(ctx, store.CatalogPrefix, false, func(ob store.Object) error {
		if !ob.Dir {
			keys = append(keys, ob.Key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return deleteKeys(ctx, st, keys)
}

// bleveAlone indexes docs with one bleve NewBuilder (the index's mapping)
// and returns wall and CPU seconds.
func bleveAlone(idx string, docs []any) (float64, float64) {
	tmp, err := os.MkdirTemp(filepath.Dir(idx), "baseline-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	debug.FreeOSMemory() // as before each build
	t0, c0 := time.Now(), cpuSeconds()
	b, err := bleve.NewBuilder(filepath.Join(tmp, "idx"), index.NewMapping(), map[string]any{"buildPathPrefix": tmp, "batchSize": 1000})
	if err != nil {
		fail(err)
	}
	for i, d := range docs {
		if err := b.Index(fmt.Sprint(i), d); err != nil {
			fail(err)
		}
	}
	if err := b.Close(); err != nil {
		fail(err)
	}
	return time.Since(t0).Seconds(), cpuSeconds() - c0
}

// cpuSeconds is the process's user+system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func incr(args []string) {
	fs := flag.NewFlagSet("incr", flag.ExitOnError)
	dir := fs.String("store", "", "bucket folder")
	idx := fs.String("index", "", "index folder")
	n := fs.Int("n", 3, "updates")
	fs.Parse(args)
	st := openStore(*dir)
	ctx := context.Background()
	names := readNames(filepath.Join(*dir, "names.txt"))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var times []float64
	for i := 0; i < *n; i++ {
		name := names[rng.IntN(len(names))]
		ver := fmt.Sprintf("999.%d.%d", time.Now().Unix()%100000, i)
		d := sha256.Sum256([]byte(name + ver + time.Now().String()))
		sp, err := nix.ParseStorePath(nix.StoreDir + "/" + nix.EncodeNix32(d[:20]) + "-" + name + "-" + ver)
		if err != nil {
			fail(err)
		}
		ni := nix.NarInfo{StorePath: sp, Compression: "xz", FileHash: nix.SHA256(d[:]), FileSize: 100, NarHash: nix.SHA256(d[:]), NarSize: 300}
		ni.URL = store.NarFile(ni.FileHash, "xz")
		if err := st.Put(ctx, "main/"+sp.HashPart()+".narinfo", ni.Bytes(), nil); err != nil {
			fail(err)
		}
		t0 := time.Now()
		rep, err := index.Update(ctx, st, repos, &index.BuildOptions{IndexDir: *idx})
		if err != nil {
			fail(err)
		}
		sec := time.Since(t0).Seconds()
		times = append(times, sec)
		if rep.Full || rep.IndexRebuilt || len(rep.Changed) != 1 || rep.Changed[0] != name {
			fail(fmt.Errorf("update was not incremental: %+v", rep))
		}
		fmt.Fprintf(os.Stderr, "incr: +1 path (%s %s): %.3fs, changed %v\n", name, ver, sec, rep.Changed)
	}
	sort.Float64s(times)
	emit(map[string]any{"op": "incr", "seconds": times, "median": median(times), "max": times[len(times)-1]})
}

func readNames(p string) []string {
	b, err := os.ReadFile(p)
	if err != nil {
		fail(err)
	}
	return strings.Fields(string(b))
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("store", "", "bucket folder")
	idx := fs.String("index", "", "index folder")
	ready := fs.String("ready", "", "file to write the base URL to")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the serving to this file")
	fs.Parse(args)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	st := openStore(*dir)
	srv, err := server.New(st, &server.Options{Repos: []server.Repo{{Name: "main", Public: true}, {Name: "staging", Public: true}}})
	if err != nil {
		fail(err)
	}
	eng := search.NewEngine(st, *idx)
	if err := eng.Open(context.Background()); err != nil {
		fail(err)
	}
	api := srv.SearchAPI(eng)
	mux := http.NewServeMux()
	mux.Handle("GET /api/search", api)
	mux.Handle("GET /api/packages/", api)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	if err := os.WriteFile(*ready, []byte("http://"+ln.Addr().String()), 0o644); err != nil {
		fail(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-sig:
	case <-time.After(10 * time.Minute):
	}
	hs.Close()
	emit(map[string]any{"op": "serve", "vmHWM": vmHWM()})
}

// vmHWM is this process's peak resident set size (bytes).
func vmHWM() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

func queryBench(args []string) {
	fs := flag.NewFlagSet("query", flag.ExitOnError)
	base := fs.String("url", "", "base URL")
	namesFile := fs.String("names", "", "package names")
	n := fs.Int("n", 3000, "measured queries")
	warm := fs.Int("warm", 300, "warm-up queries")
	fs.Parse(args)
	names := readNames(*namesFile)
	rng := rand.New(rand.NewPCG(7, 7))
	type q struct{ kind, text string }
	mk := func() q {
		name := names[rng.IntN(len(names))]
		switch r := rng.Float64(); {
		case r < 0.4:
			return q{"exact", name}
		case r < 0.7:
			return q{"prefix", name[:min(len(name), 3+rng.IntN(4))]}
		case r < 0.85:
			ws := strings.FieldsFunc(name, func(c rune) bool { return c == '-' || c == '.' })
			return q{"word", ws[len(ws)-1]}
		default:
			if len(name) < 5 {
				return q{"typo", name + "x"}
			}
			i := 1 + rng.IntN(len(name)-2)
			return q{"typo", name[:i] + name[i+1:]}
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	get := func(text string) (time.Duration, int) {
		t0 := time.Now()
		resp, err := client.Get(*base + "/api/search?q=" + url.QueryEscape(text))
		if err != nil {
			fail(err)
		}
		var r search.Response
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if resp.StatusCode != 200 {
			fail(fmt.Errorf("%s: %d %s", text, resp.StatusCode, body))
		}
		if err := json.Unmarshal(body, &r); err != nil {
			fail(err)
		}
		return d, len(r.Results)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; i < *warm && time.Now().Before(deadline); i++ {
		get(mk().text)
	}
	byKind := map[string][]time.Duration{}
	var all []time.Duration
	empty := 0
	for i := 0; i < *n && time.Now().Before(deadline); i++ {
		qq := mk()
		d, hits := get(qq.text)
		if hits == 0 {
			empty++
		}
		byKind[qq.kind] = append(byKind[qq.kind], d)
		all = append(all, d)
	}
	pct := func(ds []time.Duration, p float64) float64 {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		i := int(p * float64(len(s)-1))
		return float64(s[i].Microseconds()) / 1000
	}
	res := map[string]any{"op": "query", "n": len(all), "noHits": empty, "p50ms": pct(all, 0.5), "p90ms": pct(all, 0.9), "p99ms": pct(all, 0.99), "maxms": pct(all, 1)}
	for k, ds := range byKind {
		res[k] = map[string]any{"n": len(ds), "p50ms": pct(ds, 0.5), "p99ms": pct(ds, 0.99)}
	}
	emit(res)
}
