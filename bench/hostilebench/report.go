package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Targets of the benchmark.
const (
	targetRSSMiB = 256 // peak RSS above idle during the attack
	targetP99ms  = 50  // narinfo GET p99 during the attack
)

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// report prints the results table of the runs and returns the exit
// status: 1 when a run broke a rule (an answer that must never be given,
// a failed legitimate GET or upload); the RSS and latency targets are
// reported, not enforced.
func report(files []string) int {
	var runs []runResult
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fail(err)
		}
		var r runResult
		if err := json.Unmarshal(b, &r); err != nil {
			fail(fmt.Errorf("%s: %v", f, err))
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		fail(fmt.Errorf("report: no run"))
	}
	ph := func(r runResult, name string) phaseResult {
		for _, p := range r.Phases {
			if p.Name == name {
				return p
			}
		}
		return phaseResult{}
	}
	col := func(f func(runResult) float64) (med float64, all []float64) {
		for _, r := range runs {
			all = append(all, f(r))
		}
		return median(all), all
	}
	cfg := runs[0].Config
	fmt.Printf("\nnixrepo serve under hostile input — %s, %d cores, medians of %d runs\n",
		time.Now().UTC().Format("2006-01-02T15:04Z"), runtime.NumCPU(), len(runs))
	fmt.Printf("attack %vs (every attack at once, %v goroutines each, %vms pause; slowloris %v uploads + %v header connections, a byte every %vs)\n",
		cfg["dur"], cfg["conc"], cfg["pause_ms"], cfg["slow_conns"], cfg["slow_hdr"], cfg["trickle"])
	fmt.Printf("legitimate load: narinfo GETs on %v connections, %v/s in all, over %v real narinfos; one upload (NAR + narinfo + GET) per second\n",
		cfg["get_conns"], cfg["get_rate"], cfg["narinfos"])
	fmt.Printf("baseline: the same server, same load, no attack, %vs before and %vs after the attack\n", cfg["base"], cfg["base"])
	if o, _ := cfg["only"].(string); o != "" {
		fmt.Printf("ONLY: %s\n", o)
	}

	// Answers by attack, summed over the runs.
	fmt.Printf("\n%-18s %-64s %s\n", "attack", "answers (all runs)", "first reason of the most frequent")
	names := []string{}
	what := map[string]string{}
	sum := map[string]map[string]int{}
	reasons := map[string]map[string]string{}
	for _, r := range runs {
		for _, a := range r.Attacks {
			if sum[a.Name] == nil {
				names = append(names, a.Name)
				sum[a.Name], reasons[a.Name] = map[string]int{}, map[string]string{}
				what[a.Name] = a.What
			}
			for k, v := range a.Counts {
				sum[a.Name][k] += v
			}
			for k, v := range a.Reasons {
				if _, ok := reasons[a.Name][k]; !ok {
					reasons[a.Name][k] = v
				}
			}
		}
	}
	for _, n := range names {
		keys := slices.SortedFunc(maps.Keys(sum[n]), func(a, b string) int { return sum[n][b] - sum[n][a] })
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s×%d", k, sum[n][k]))
		}
		top := ""
		if len(keys) > 0 {
			top = reasons[n][keys[0]]
			if len(top) > 90 {
				top = top[:90] + "…"
			}
		}
		fmt.Printf("%-18s %-64s %s\n", n, strings.Join(parts, " "), top)
	}
	fmt.Println()
	for _, n := range names {
		fmt.Printf("  %-18s %s\n", n, what[n])
	}

	// The table.
	missed := false
	fmt.Printf("\n%-58s %10s %10s %7s %8s  %s\n", "metric", "attack", "baseline", "ratio", "target", "")
	line := func(label string, v, b float64, target string, ok *bool) {
		ratio := "-"
		if b > 0 {
			ratio = fmt.Sprintf("%.2f", v/b)
		}
		bs := "-"
		if b != 0 {
			bs = fmt.Sprintf("%.1f", b)
		}
		verdict := "info"
		if ok != nil {
			verdict = "ok"
			if !*ok {
				verdict, missed = "MISSED", true
			}
		}
		fmt.Printf("%-58s %10.1f %10s %7s %8s  %s\n", label, v, bs, ratio, target, verdict)
	}
	b := func(x bool) *bool { return &x }

	idle, _ := col(func(r runResult) float64 { return mib(ph(r, "before").RSSLast) })
	peak, _ := col(func(r runResult) float64 { return mib(max(ph(r, "attack").RSSMax, ph(r, "drain").RSSMax)) })
	delta, deltas := col(func(r runResult) float64 {
		return mib(max(ph(r, "attack").RSSMax, ph(r, "drain").RSSMax) - ph(r, "before").RSSLast)
	})
	tdelta, tdeltas := col(func(r runResult) float64 {
		return mib(max(ph(r, "attack").TreeMax, ph(r, "drain").TreeMax) - ph(r, "before").TreeFirst)
	})
	after, _ := col(func(r runResult) float64 { return mib(ph(r, "after").RSSLast) })
	hwm, _ := col(func(r runResult) float64 { return mib(r.VmHWM) })
	line("server RSS MiB: peak during attack / idle", peak, idle, "", nil)
	line("server RSS MiB: peak − idle", delta, 0, fmt.Sprintf("≤ %d", targetRSSMiB), b(delta <= targetRSSMiB))
	line("server + xz children RSS MiB: peak − idle", tdelta, 0, fmt.Sprintf("≤ %d", targetRSSMiB), b(tdelta <= targetRSSMiB))
	line("server RSS MiB after the attack / idle", after, idle, "", nil)
	line("server VmHWM MiB (whole run)", hwm, 0, "", nil)

	for _, q := range []struct {
		label string
		f     func(phaseResult) float64
		tgt   float64
	}{
		{"narinfo GET p50 ms", func(p phaseResult) float64 { return p.P50ms }, 0},
		{"narinfo GET p99 ms", func(p phaseResult) float64 { return p.P99ms }, targetP99ms},
		{"narinfo GET max ms", func(p phaseResult) float64 { return p.MaxMs }, 0},
		{"narinfo GET p99 ms from scheduled time", func(p phaseResult) float64 { return p.P99Sched }, 0},
	} {
		a, _ := col(func(r runResult) float64 { return q.f(ph(r, "attack")) })
		bef, _ := col(func(r runResult) float64 { return q.f(ph(r, "before")) })
		aft, _ := col(func(r runResult) float64 { return q.f(ph(r, "after")) })
		var ok *bool
		tgt := ""
		if q.tgt > 0 {
			ok, tgt = b(a <= q.tgt), fmt.Sprintf("≤ %.0f", q.tgt)
		}
		line(q.label+" (vs before)", a, bef, tgt, ok)
		line(q.label+" (vs after)", a, aft, "", nil)
	}
	gets, _ := col(func(r runResult) float64 { return float64(ph(r, "attack").Gets) })
	getsB, _ := col(func(r runResult) float64 {
		return float64(ph(r, "before").Gets) / ph(r, "before").Seconds * ph(r, "attack").Seconds
	})
	getFails := 0
	upN, upF := 0, 0
	for _, r := range runs {
		for _, p := range r.Phases {
			getFails += p.GetFails
		}
		p := ph(r, "attack")
		upN += p.Uploads
		upF += len(p.UpFails)
	}
	line("narinfo GETs answered (before: scaled to the attack)", gets, getsB, "", nil)
	line("narinfo GETs failed, all phases and runs", float64(getFails), 0, "0", b(getFails == 0))
	line("legitimate uploads during the attack, all runs", float64(upN), 0, "", nil)
	line("legitimate uploads failed during the attack", float64(upF), 0, "0", b(upF == 0))
	upA, _ := col(func(r runResult) float64 { return ph(r, "attack").UpMaxMs })
	upB, _ := col(func(r runResult) float64 { return ph(r, "before").UpMaxMs })
	line("legitimate upload max ms (NAR+narinfo+GET)", upA, upB, "", nil)
	cpuA, _ := col(func(r runResult) float64 { return ph(r, "attack").CPUPercent })
	cpuB, _ := col(func(r runResult) float64 { return ph(r, "before").CPUPercent })
	line(fmt.Sprintf("server CPU %% (with its xz children; of %d00)", runtime.NumCPU()), cpuA, cpuB, "", nil)
	dA, _ := col(func(r runResult) float64 { return ph(r, "attack").DriverCPU })
	dB, _ := col(func(r runResult) float64 { return ph(r, "before").DriverCPU })
	line("this driver's CPU % (attacks and legitimate load)", dA, dB, "", nil)
	oA, _ := col(func(r runResult) float64 { return ph(r, "attack").OthersCPU })
	oB, _ := col(func(r runResult) float64 { return ph(r, "before").OthersCPU })
	line(fmt.Sprintf("other processes' CPU %% (of %d00)", runtime.NumCPU()), oA, oB, "", nil)
	drain, _ := col(func(r runResult) float64 { return r.DrainSec })
	line("drain s (until no upload is active or waiting)", drain, 0, "", nil)

	fmt.Println("\nper run (attack | before | after):")
	for _, r := range runs {
		a, bf, af := ph(r, "attack"), ph(r, "before"), ph(r, "after")
		fmt.Printf("  run %d: RSS idle %.0f peak %.0f (tree peak %.0f) after %.0f MiB; GET p99 %.1f | %.1f | %.1f ms, max %.0f | %.0f | %.0f ms, %d | %d | %d GETs; uploads %d/%d ok; CPU server %.0f%% driver %.0f%% others %.0f%% | others before %.0f%%\n",
			r.Run, mib(bf.RSSLast), mib(max(a.RSSMax, ph(r, "drain").RSSMax)), mib(max(a.TreeMax, ph(r, "drain").TreeMax)), mib(af.RSSLast),
			a.P99ms, bf.P99ms, af.P99ms, a.MaxMs, bf.MaxMs, af.MaxMs, a.Gets, bf.Gets, af.Gets, a.Uploads-len(a.UpFails), a.Uploads, a.CPUPercent, a.DriverCPU, a.OthersCPU, bf.OthersCPU)
	}
	fmt.Printf("  peak − idle MiB per run: %v (server), %v (with children)\n", round1(deltas), round1(tdeltas))
	fmt.Println("idle = the server's VmRSS at the end of the phase before the attack; peak = highest VmRSS sampled every 20 ms during")
	fmt.Println("the attack and its drain; ratio = attack / baseline; the verdicts are on the medians.")

	nf := 0
	for _, r := range runs {
		for _, f := range r.Failures {
			if nf == 0 {
				fmt.Println("\nrules broken:")
			}
			nf++
			fmt.Printf("  run %d: %s\n", r.Run, f)
		}
	}
	if nf == 0 {
		fmt.Println("\nrules: every attack got only its documented answers (no 5xx/202/408/429 to any PUT, no 2xx where a refusal is")
		fmt.Println("documented, no repository-name oracle, no Host echoed); every legitimate GET and upload succeeded.")
	}
	if missed {
		fmt.Println("\ntargets missed: see MISSED above.")
	}
	if nf > 0 {
		return 1
	}
	return 0
}

func round1(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int(x*10+0.5)) / 10
	}
	return out
}
