package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// phase collects what the legitimate traffic and the memory sampler saw
// during one phase of a run (before, attack, after).
type phase struct {
	Name string `json:"name"`

	mu       sync.Mutex
	lat      []time.Duration // narinfo GET latency, from sending to the last byte
	late     []time.Duration // from the request's scheduled time (includes the client's own delays)
	getFails int
	getErrs  []string
	uploads  int
	upFails  []string
	upLat    []time.Duration

	rssFirst, rssLast, rssMax   int64 // server VmRSS, bytes
	treeFirst, treeLast, treeMx int64 // server and its child processes (xz)
	samples                     int
	cpu0, cpu1                  float64 // server CPU seconds at start and end
	self0, self1                float64 // this driver's CPU seconds
	busy0, busy1                float64 // the machine's busy CPU seconds (/proc/stat)
	t0, t1                      time.Time
}

func (p *phase) getFail(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.getFails++
	if len(p.getErrs) < 10 {
		p.getErrs = append(p.getErrs, oneLine(msg, 200))
	}
}

// phaseResult is a phase as reported.
type phaseResult struct {
	Name       string   `json:"name"`
	Seconds    float64  `json:"seconds"`
	Gets       int      `json:"gets"`
	GetFails   int      `json:"get_fails"`
	GetErrors  []string `json:"get_errors,omitempty"`
	P50ms      float64  `json:"p50_ms"`
	P99ms      float64  `json:"p99_ms"`
	MaxMs      float64  `json:"max_ms"`
	P99Sched   float64  `json:"p99_sched_ms"`
	Uploads    int      `json:"uploads"`
	UpFails    []string `json:"upload_fails,omitempty"`
	UpP50ms    float64  `json:"upload_p50_ms"`
	UpMaxMs    float64  `json:"upload_max_ms"`
	RSSFirst   int64    `json:"rss_first"`
	RSSLast    int64    `json:"rss_last"`
	RSSMax     int64    `json:"rss_max"`
	TreeMax    int64    `json:"tree_rss_max"`
	TreeFirst  int64    `json:"tree_rss_first"`
	Samples    int      `json:"rss_samples"`
	CPUPercent float64  `json:"server_cpu_percent"`
	// DriverCPU is this program's CPU (the attacks and the legitimate
	// load); OthersCPU the rest of the machine's: the machine is shared.
	DriverCPU float64 `json:"driver_cpu_percent"`
	OthersCPU float64 `json:"others_cpu_percent"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func (p *phase) result() phaseResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	slices.Sort(p.lat)
	slices.Sort(p.late)
	slices.Sort(p.upLat)
	d := p.t1.Sub(p.t0).Seconds()
	r := phaseResult{Name: p.Name, Seconds: d, Gets: len(p.lat), GetFails: p.getFails, GetErrors: p.getErrs,
		P50ms: ms(pct(p.lat, .5)), P99ms: ms(pct(p.lat, .99)), P99Sched: ms(pct(p.late, .99)),
		Uploads: p.uploads, UpFails: p.upFails, UpP50ms: ms(pct(p.upLat, .5)),
		RSSFirst: p.rssFirst, RSSLast: p.rssLast, RSSMax: p.rssMax, TreeMax: p.treeMx, TreeFirst: p.treeFirst, Samples: p.samples}
	if len(p.lat) > 0 {
		r.MaxMs = ms(p.lat[len(p.lat)-1])
	}
	if len(p.upLat) > 0 {
		r.UpMaxMs = ms(p.upLat[len(p.upLat)-1])
	}
	if d > 0 {
		r.CPUPercent = 100 * (p.cpu1 - p.cpu0) / d
		r.DriverCPU = 100 * (p.self1 - p.self0) / d
		r.OthersCPU = 100*(p.busy1-p.busy0)/d - r.CPUPercent - r.DriverCPU
	}
	return r
}

// recorder is the phase now being recorded (nil: none).
type recorder struct{ cur atomic.Pointer[phase] }

// getLoad sends narinfo GETs on conns keep-alive connections, rate per
// second in all, each connection cycling over its repository's narinfos:
// priv with the reader token, pub anonymously, the virtual repository
// with the reader token. Every answer must be a 200 narinfo.
func getLoad(ctx context.Context, e *env, rec *recorder, conns int, rate float64) {
	interval := time.Duration(float64(conns) / rate * float64(time.Second))
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			c := newClient(1)
			repo, token, hashes := repoPriv, e.tokens["reader"], e.privHashes
			switch i % 3 {
			case 1:
				repo, token, hashes = repoPub, "", e.pubHashes
			case 2:
				repo, hashes = repoVirtual, append(slices.Clone(e.privHashes), e.pubHashes...)
			}
			next := time.Now().Add(time.Duration(i) * interval / time.Duration(conns))
			for n := i; ctx.Err() == nil; n++ {
				if d := time.Until(next); d > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				}
				sched := next
				next = next.Add(interval)
				if time.Since(next) > time.Second {
					next = time.Now() // far behind: do not burst to catch up
				}
				p := rec.cur.Load()
				rel := hashes[n%len(hashes)] + ".narinfo"
				t0 := time.Now()
				ans := do(ctx, c, req{method: "GET", url: e.api(repo, rel), token: token})
				t1 := time.Now()
				if p == nil || ctx.Err() != nil {
					continue
				}
				if ans.status != 200 || !bytes.HasPrefix(ans.body, []byte("StorePath: ")) {
					p.getFail(fmt.Sprintf("GET %s/%s: %d %v %s", repo, rel, ans.status, ans.err, ans.body))
					continue
				}
				p.mu.Lock()
				p.lat = append(p.lat, t1.Sub(t0))
				p.late = append(p.late, t1.Sub(sched))
				p.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// legitUploads uploads, every second while a phase is recorded, a fresh
// small path with the legit token: its NAR, its narinfo (unsigned), then
// reads the narinfo back. Each step must be a 200 and the narinfo signed.
func legitUploads(ctx context.Context, e *env, rec *recorder) {
	c := newClient(2)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p := rec.cur.Load()
		if p == nil {
			continue
		}
		t0 := time.Now()
		h, err := legitUpload(ctx, e, c, n)
		d := time.Since(t0)
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		p.uploads++
		p.upLat = append(p.upLat, d)
		if err != nil && len(p.upFails) < 20 {
			p.upFails = append(p.upFails, oneLine(err.Error(), 300))
		}
		p.mu.Unlock()
		if err == nil {
			e.mu.Lock()
			e.uploaded = append(e.uploaded, h)
			e.mu.Unlock()
		}
	}
}

// legitUpload uploads one path and returns its hash part.
func legitUpload(ctx context.Context, e *env, c *http.Client, n int) (string, error) {
	data := make([]byte, 1024+n%4096)
	rand.Read(data)
	f, err := makeNar(n%2 == 1, func(w *narWriter) { w.regular(data) })
	if err != nil {
		return "", err
	}
	h := randomHashPart()
	info := narInfo(h, fmt.Sprintf("bench-%d", n), f)
	tok := e.tokens["legit"]
	for _, r := range []req{
		{method: "PUT", url: e.api(repoPriv, f.URL()), token: tok, body: f.Data},
		{method: "PUT", url: e.api(repoPriv, h+".narinfo"), token: tok, body: info},
	} {
		if ans := do(ctx, c, r); ans.status != 200 {
			return "", fmt.Errorf("PUT %s: %d %v %s", strings.TrimPrefix(r.url, e.url), ans.status, ans.err, ans.body)
		}
	}
	if err := checkUploaded(ctx, e, c, h, f.NarHash); err != nil {
		return "", fmt.Errorf("after its upload: %w", err)
	}
	return h, nil
}

// checkUploaded GETs a legitimately uploaded narinfo: it must be served,
// signed, with its NarHash (when given).
func checkUploaded(ctx context.Context, e *env, c *http.Client, h, narHash string) error {
	ans := do(ctx, c, req{method: "GET", url: e.api(repoPriv, h+".narinfo"), token: e.tokens["legit"]})
	if ans.status != 200 || !bytes.Contains(ans.body, []byte("\nSig: priv-1:")) || !bytes.Contains(ans.body, []byte("NarHash: sha256:"+narHash)) {
		return fmt.Errorf("GET priv/%s.narinfo: %d %v %q", h, ans.status, ans.err, ans.body)
	}
	return nil
}

// procStatus reads a field of /proc/PID/status in bytes.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return -1
}

// children lists the child processes of pid (of all its threads).
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// treeRSS is the VmRSS of pid and of its descendants (the xz decoders).
// A child still running the server's own executable is left out: it is
// between fork and exec, sharing the server's memory (Go forks with
// CLONE_VM), which its VmRSS would count twice.
func treeRSS(pid int, self int64) int64 {
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	sum := self
	var add func(p int, depth int)
	add = func(p int, depth int) {
		for _, c := range children(p) {
			if x, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", c)); err != nil || x == exe {
				continue
			}
			if v := procStatus(c, "VmRSS"); v > 0 {
				sum += v
			}
			if depth < 3 {
				add(c, depth+1)
			}
		}
	}
	add(pid, 0)
	return sum
}

// cpuSeconds is the user and system time of pid and of its children it
// has waited for (the xz decoders).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 15 {
		return 0
	}
	var sum float64
	for _, v := range f[11:15] { // utime stime cutime cstime
		x, _ := strconv.ParseFloat(v, 64)
		sum += x
	}
	return sum / 100 // USER_HZ
}

// machineBusy is the CPU seconds the machine has spent busy (not idle or
// waiting for I/O), from /proc/stat.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy float64
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest times are in user already
			busy += x
		}
	}
	return busy / 100
}

// sampleRSS reads the server's VmRSS every interval into the current
// phase, until ctx is done.
func sampleRSS(ctx context.Context, pid int, rec *recorder, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p := rec.cur.Load()
		if p == nil {
			continue
		}
		rss := procStatus(pid, "VmRSS")
		if rss < 0 {
			continue
		}
		tree := treeRSS(pid, rss)
		p.mu.Lock()
		if p.samples == 0 {
			p.rssFirst, p.treeFirst = rss, tree
		}
		p.samples++
		p.rssLast, p.treeLast = rss, tree
		p.rssMax = max(p.rssMax, rss)
		p.treeMx = max(p.treeMx, tree)
		p.mu.Unlock()
	}
}
