// Command hostilebench drives bench/hostile.sh: hostile uploads and reads
// against a running `nixrepo serve`, all at once, while it measures the
// server's memory and the latency of ordinary narinfo GETs. It talks to the
// server over HTTP only (the server is the nixrepo binary, set up by the
// script).
//
//	hostilebench gen -out DIR -n N -channel FILE   a binary cache of N small paths (for nixrepo ingest)
//	                                               and a usable channel tarball
//	hostilebench run -url URL -pid PID -tokens F -priv-cache D -pub-cache D -out RUN.json [knobs]
//	                                               one run: before (no attack), attack, drain, after
//	hostilebench report RUN.json...                the results table (medians over runs); exit 1 when
//	                                               any run broke a rule
//
// A run's phases: WARM seconds of GET load unrecorded; BASE seconds of GET
// load and legitimate uploads (before); DUR seconds of the same with every
// selected attack (attack); the attacks stopped, until the server has no
// upload active or waiting (drain, at most a minute); BASE seconds again
// (after). The server's VmRSS (and that of its child processes, the xz
// decoders) is sampled every 20 ms throughout.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: hostilebench gen|run|report [flags]"))
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "gen":
		gen(args)
	case "run":
		run(args)
	case "report":
		os.Exit(report(args))
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "hostilebench:", err)
	os.Exit(2)
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, "   "+format+"\n", a...) }

// gen writes a binary cache of n small paths, as nix copy --to file://
// would (unsigned narinfos, zstd or plain NAR files), and a channel
// tarball.
func gen(args []string) {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	out := fs.String("out", "", "folder of the binary cache")
	n := fs.Int("n", 200, "paths")
	channel := fs.String("channel", "", "write a usable channel tarball here")
	fs.Parse(args)
	if *out == "" || *channel == "" {
		fail(fmt.Errorf("gen: -out and -channel are required"))
	}
	if err := os.MkdirAll(filepath.Join(*out, "nar"), 0o755); err != nil {
		fail(err)
	}
	if err := os.WriteFile(filepath.Join(*out, "nix-cache-info"), []byte("StoreDir: /nix/store\n"), 0o644); err != nil {
		fail(err)
	}
	for i := range *n {
		data := fmt.Appendf(nil, "#!/bin/sh\necho package %d\n%s\n", i, strings.Repeat("# filler\n", i%50))
		f, err := makeNar(i%2 == 0, func(w *narWriter) { w.regular(data) })
		if err != nil {
			fail(err)
		}
		h := randomHashPart()
		if err := os.WriteFile(filepath.Join(*out, f.URL()), f.Data, 0o644); err != nil {
			fail(err)
		}
		if err := os.WriteFile(filepath.Join(*out, h+".narinfo"), narInfo(h, fmt.Sprintf("pkg%d-1.%d", i, i%7), f), 0o644); err != nil {
			fail(err)
		}
	}
	tb, err := channelTarball("bench")
	if err != nil {
		fail(err)
	}
	if err := os.WriteFile(*channel, tb, 0o644); err != nil {
		fail(err)
	}
}

// runResult is what one run writes.
type runResult struct {
	Run      int             `json:"run"`
	Started  time.Time       `json:"started"`
	Config   map[string]any  `json:"config"`
	Phases   []phaseResult   `json:"phases"`
	Attacks  []attackResult  `json:"attacks"`
	VmHWM    int64           `json:"vmhwm"`
	DrainSec float64         `json:"drain_seconds"`
	Failures []string        `json:"failures"`
	Metrics  []string        `json:"metrics"`
	Payloads map[string]int  `json:"payload_bytes"`
	Extra    json.RawMessage `json:"extra,omitempty"`
}

type attackResult struct {
	Name    string            `json:"name"`
	What    string            `json:"what"`
	Conc    int               `json:"concurrency"`
	Counts  map[string]int    `json:"counts"`
	Reasons map[string]string `json:"reasons"`
}

func run(args []string) {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	base := fs.String("url", "", "server URL (http://127.0.0.1:PORT)")
	pid := fs.Int("pid", 0, "the server's process id")
	tokFile := fs.String("tokens", "", `file of "NAME TOKEN" lines: attacker, slowloris, legit, reader, outsider`)
	privCache := fs.String("priv-cache", "", "the binary cache ingested into priv")
	pubCache := fs.String("pub-cache", "", "the binary cache ingested into pub")
	out := fs.String("out", "", "write the run's results (JSON) here")
	runN := fs.Int("run", 1, "run number")
	dur := fs.Duration("dur", 30*time.Second, "attack phase")
	baseDur := fs.Duration("base", 10*time.Second, "each phase without attack (before, after)")
	warm := fs.Duration("warm", 3*time.Second, "GET load before recording")
	only := fs.String("only", "", "attacks to run: names or groups, separated by spaces or commas (default all)")
	conc := fs.Int("conc", 2, "goroutines per attack")
	pause := fs.Duration("pause", 20*time.Millisecond, "pause between two requests of one attack goroutine")
	trickle := fs.Duration("trickle", 2*time.Second, "slowloris: one byte every")
	slowConns := fs.Int("slow-conns", 300, "slowloris uploads kept open")
	slowHdr := fs.Int("slow-hdr", 32, "slowloris connections trickling headers")
	getConns := fs.Int("get-conns", 8, "narinfo GET connections")
	getRate := fs.Float64("get-rate", 400, "narinfo GETs per second in all")
	fs.Parse(args)
	if *base == "" || *pid == 0 || *tokFile == "" || *privCache == "" || *pubCache == "" || *out == "" {
		fail(fmt.Errorf("run: -url, -pid, -tokens, -priv-cache, -pub-cache and -out are required"))
	}

	e := &env{url: strings.TrimRight(*base, "/"), tokens: map[string]string{}, pause: *pause, trickle: *trickle}
	b, err := os.ReadFile(*tokFile)
	if err != nil {
		fail(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			e.tokens[f[0]] = f[1]
		}
	}
	for _, t := range []string{"attacker", "slowloris", "legit", "reader", "outsider"} {
		if e.tokens[t] == "" {
			fail(fmt.Errorf("%s: no token %s", *tokFile, t))
		}
	}
	if e.privHashes, e.privNars, err = readCache(*privCache); err != nil {
		fail(err)
	}
	if e.pubHashes, _, err = readCache(*pubCache); err != nil {
		fail(err)
	}
	t0 := time.Now()
	if e.p, err = makePayloads(); err != nil {
		fail(err)
	}
	logf("payloads made in %.1fs", time.Since(t0).Seconds())

	// Setup checks: the readers see what they should.
	c := newClient(2)
	for _, h := range e.privHashes {
		if a := do(context.Background(), c, req{method: "GET", url: e.api(repoPriv, h+".narinfo"), token: e.tokens["reader"]}); a.status != 200 {
			fail(fmt.Errorf("setup: GET priv/%s.narinfo with the reader token: %d %v %s", h, a.status, a.err, a.body))
		}
	}
	if a := do(context.Background(), c, req{method: "GET", url: e.api(repoPub, e.pubHashes[0]+".narinfo")}); a.status != 200 {
		fail(fmt.Errorf("setup: anonymous GET pub/%s.narinfo: %d %v %s", e.pubHashes[0], a.status, a.err, a.body))
	}
	if a := do(context.Background(), c, req{method: "GET", url: e.api(repoPub, "channels/"+channelName)}); a.status != 302 {
		fail(fmt.Errorf("setup: GET pub/channels/%s: %d %v %s", channelName, a.status, a.err, a.body))
	}

	all := attacks(e, *conc)
	var sel []*attack
	for _, a := range all {
		if *only == "" || slices.ContainsFunc(strings.FieldsFunc(*only, func(r rune) bool { return r == ',' || r == ' ' }),
			func(s string) bool { return s == a.name || s == a.group }) {
			sel = append(sel, a)
		}
		switch a.name {
		case "slowloris-upload":
			a.conc = *slowConns
		case "slowloris-header":
			a.conc = *slowHdr
		}
	}
	if len(sel) == 0 {
		fail(fmt.Errorf("-only %q selects no attack", *only))
	}

	res := runResult{Run: *runN, Started: time.Now().UTC(), Payloads: map[string]int{
		"symlink_tarball": len(e.p.symlinkTarball), "tar_bomb": len(e.p.tarBomb), "big_narinfo": len(e.p.bigNarInfo),
		"xz_dict": len(e.p.xzDict), "gzip_log": len(e.p.gzipLog), "zero_nar": len(e.p.zeroNar.Data), "listing_nar": len(e.p.listingNar.Data)},
		Config: map[string]any{"dur": dur.Seconds(), "base": baseDur.Seconds(), "conc": *conc, "pause_ms": ms(*pause),
			"trickle": trickle.Seconds(), "slow_conns": *slowConns, "slow_hdr": *slowHdr, "get_conns": *getConns,
			"get_rate": *getRate, "only": *only, "narinfos": len(e.privHashes) + len(e.pubHashes)}}

	ctx, stop := context.WithCancel(context.Background())
	rec := &recorder{}
	var bg sync.WaitGroup
	bg.Go(func() { sampleRSS(ctx, *pid, rec, 20*time.Millisecond) })
	bg.Go(func() { getLoad(ctx, e, rec, *getConns, *getRate) })
	bg.Go(func() { legitUploads(ctx, e, rec) })

	var phases []*phase
	record := func(name string, d time.Duration, during func()) *phase {
		p := &phase{Name: name, t0: time.Now(), cpu0: cpuSeconds(*pid), self0: cpuSeconds(os.Getpid()), busy0: machineBusy()}
		phases = append(phases, p)
		rec.cur.Store(p)
		if during != nil {
			during()
		} else {
			time.Sleep(d)
		}
		rec.cur.Store(nil)
		p.t1, p.cpu1, p.self1, p.busy1 = time.Now(), cpuSeconds(*pid), cpuSeconds(os.Getpid()), machineBusy()
		return p
	}
	alive := func() {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", *pid)); err != nil {
			fail(fmt.Errorf("the server (pid %d) is gone", *pid))
		}
	}

	logf("run %d: warm-up %s, before %s", *runN, *warm, *baseDur)
	time.Sleep(*warm)
	record("before", *baseDur, nil)
	alive()
	logf("run %d: attack %s: %d attacks", *runN, *dur, len(sel))
	record("attack", 0, func() {
		actx, astop := context.WithTimeout(ctx, *dur)
		defer astop()
		var wg sync.WaitGroup
		for _, a := range sel {
			if strings.HasPrefix(a.name, "slowloris") {
				wg.Go(func() { a.run(actx, a, nil) })
				continue
			}
			for range a.conc {
				cl := newClient(1)
				wg.Go(func() { a.run(actx, a, cl) })
			}
		}
		<-actx.Done()
		wg.Wait()
	})
	alive()
	t1 := time.Now()
	record("drain", 0, func() {
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			m := metrics(e.url)
			if m["nixrepo_uploads_active"] == 0 && m["nixrepo_uploads_waiting"] == 0 {
				return
			}
		}
		logf("run %d: uploads still active or waiting after a minute", *runN)
	})
	res.DrainSec = time.Since(t1).Seconds()
	logf("run %d: drained in %.1fs; after %s", *runN, res.DrainSec, *baseDur)
	record("after", *baseDur, nil)
	alive()
	res.VmHWM = procStatus(*pid, "VmHWM")
	stop()
	bg.Wait()

	// Every legitimate upload is still served, signed, at the end.
	for _, h := range e.uploaded {
		if err := checkUploaded(context.Background(), e, c, h, ""); err != nil {
			res.Failures = append(res.Failures, "a legitimate upload is not served at the end of the run: "+err.Error())
		}
	}
	logf("run %d: %d legitimate uploads served at the end", *runN, len(e.uploaded))
	// Nothing of the refused uploads is served.
	for _, rel := range []string{e.p.zeroNar.URL(), "channels/evil/channel.json", "channels/bomb/channel.json", "channels/slow/channel.json"} {
		for _, repo := range []string{repoPriv, repoVirtual} {
			if a := do(context.Background(), c, req{method: "GET", url: e.api(repo, rel), token: e.tokens["reader"]}); a.status != 404 {
				res.Failures = append(res.Failures, fmt.Sprintf("a refused upload is served: GET %s/%s: %d", repo, rel, a.status))
			}
		}
	}

	for _, p := range phases {
		r := p.result()
		res.Phases = append(res.Phases, r)
		if r.GetFails > 0 {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: %d narinfo GETs failed: %s", r.Name, r.GetFails, strings.Join(r.GetErrors, "; ")))
		}
		if len(r.UpFails) > 0 {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: %d of %d legitimate uploads failed: %s", r.Name, len(r.UpFails), r.Uploads, strings.Join(r.UpFails, "; ")))
		}
	}
	for _, a := range sel {
		res.Attacks = append(res.Attacks, attackResult{Name: a.name, What: a.what, Conc: a.conc, Counts: a.t.counts, Reasons: a.t.reasons})
		res.Failures = append(res.Failures, a.evaluate()...)
	}
	res.Metrics = metricLines(e.url, "nixrepo_uploads_total", "nixrepo_http_requests_total{kind=\"narinfo\"", "process_resident_memory_bytes", "go_memstats_heap_sys_bytes")
	j, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(*out, j, 0o644); err != nil {
		fail(err)
	}
	for _, f := range res.Failures {
		logf("FAIL %s", f)
	}
}

// readCache lists the hash parts of a binary cache's narinfos and their
// NAR file names.
func readCache(dir string) (hashes, nars []string, err error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	if err != nil || len(names) == 0 {
		return nil, nil, fmt.Errorf("no narinfo in %s", dir)
	}
	slices.Sort(names)
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, nil, err
		}
		url := ""
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "URL: "); ok {
				url = v
			}
		}
		hashes = append(hashes, strings.TrimSuffix(filepath.Base(n), ".narinfo"))
		nars = append(nars, url)
	}
	return hashes, nars, nil
}

// metrics reads the server's gauges without labels.
func metrics(base string) map[string]float64 {
	m := map[string]float64{}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return map[string]float64{"nixrepo_uploads_active": -1}
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				m[f[0]] = v
			}
		}
	}
	return m
}

// metricLines are the lines of /metrics starting with one of prefixes.
func metricLines(base string, prefixes ...string) []string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return []string{err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
			}
		}
	}
	return out
}
