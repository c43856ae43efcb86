package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Repository names and tokens of the configuration bench/hostile.sh writes.
const (
	repoPriv    = "priv" // local, private, sample cache ingested
	repoPub     = "pub"  // local, public, generated paths and a channel
	repoVirtual = "all"  // virtual over priv and pub, private
	channelName = "bench"
	publicURL   = "https://nix.example.org" // [site] server_url
)

// env is what the traffic needs to know about the server.
type env struct {
	url        string
	tokens     map[string]string // attacker, slowloris, legit, reader, outsider
	privHashes []string          // hash parts of priv's narinfos
	privNars   []string          // their NAR file names (nar/…)
	pubHashes  []string
	p          *payloads
	pause      time.Duration // between two requests of one attack goroutine
	trickle    time.Duration // slowloris: one byte every trickle
	seq        atomic.Int64  // for unique names

	mu       sync.Mutex
	uploaded []string // hash parts of the legitimate uploads that succeeded
}

func (e *env) next() int64 { return e.seq.Add(1) }

// attack is one kind of hostile request, sent by conc goroutines in a loop.
type attack struct {
	name   string
	group  string // what ONLY selects: channel narinfo nar search oracle slowloris host
	what   string // one line for the report
	put    bool   // uploads: never 5xx/202/408/429
	refuse bool   // a refusal is documented: any 2xx fails the run
	expect []int  // the documented answers (admission 400s are allowed for every upload)
	conc   int
	quiet  bool // may get no answer at all during the run (slowloris on headers)
	run    func(ctx context.Context, a *attack, c *http.Client)
	t      *tally
	env    *env
}

// record counts one answer and checks it against the attack's rules.
func (a *attack) record(ctx context.Context, ans answer) {
	if ans.status == 0 {
		a.t.add(errKind(ctx, ans.err), fmt.Sprint(ans.err))
		return
	}
	key := strconv.Itoa(ans.status)
	if adm := admission(ans.body); ans.status == 400 && a.put && adm != "" {
		key = "400 " + adm
	}
	a.t.add(key, string(ans.body))
}

// evaluate returns the broken rules of the run: answers that must never
// be given, answers that are not the documented ones, recorded failures.
func (a *attack) evaluate() []string {
	var bad []string
	answered := 0
	for key, n := range a.t.counts {
		code, err := strconv.Atoi(strings.Fields(key)[0])
		if err != nil {
			continue // transport error or cancelled: not an answer
		}
		answered += n
		reason := a.t.reasons[key]
		switch {
		case a.put && (code >= 500 || code == 202 || code == 408 || code == 429):
			bad = append(bad, fmt.Sprintf("%s: %d uploads answered %d (never allowed for a PUT): %s", a.name, n, code, reason))
		case code >= 500:
			bad = append(bad, fmt.Sprintf("%s: %d answers %d: %s", a.name, n, code, reason))
		case a.refuse && code/100 == 2:
			bad = append(bad, fmt.Sprintf("%s: %d answers %d where a refusal is documented", a.name, n, code))
		case code == 400 && a.put && len(strings.Fields(key)) == 2: // an admission refusal
		case !slices.Contains(a.expect, code):
			bad = append(bad, fmt.Sprintf("%s: %d answers %d, documented %v: %s", a.name, n, code, a.expect, reason))
		}
	}
	if answered == 0 && !a.quiet {
		bad = append(bad, a.name+": no answer at all (the attack did not run)")
	}
	for _, f := range a.t.fails {
		bad = append(bad, a.name+": "+f)
	}
	if a.t.nfails > len(a.t.fails) {
		bad = append(bad, fmt.Sprintf("%s: %d more failures", a.name, a.t.nfails-len(a.t.fails)))
	}
	return bad
}

func (e *env) api(repo, rel string) string { return e.url + "/api/nix/" + repo + "/" + rel }

// loop calls f until ctx is done, pausing e.pause between calls.
func (e *env) loop(ctx context.Context, f func()) {
	for ctx.Err() == nil {
		f()
		select {
		case <-ctx.Done():
		case <-time.After(e.pause):
		}
	}
}

// put is a PUT by the attacker token.
func (a *attack) put1(ctx context.Context, c *http.Client, rel string, body []byte, hdr map[string]string, chunked bool) answer {
	ans := do(ctx, c, req{method: http.MethodPut, url: a.env.api(repoPriv, rel), token: a.env.tokens["attacker"],
		body: body, header: hdr, chunked: chunked})
	a.record(ctx, ans)
	return ans
}

func attacks(e *env, conc int) []*attack {
	p := e.p
	list := []*attack{
		// 1. channel tarballs
		{name: "channel-symlink", group: "channel", put: true, refuse: true, expect: []int{422},
			what: "channel PUT: top/x → /etc/passwd, then a regular file top/x",
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() {
					a.put1(ctx, c, fmt.Sprintf("channels/evil/nixpkgs/s%d", e.next()), p.symlinkTarball, nil, false)
				})
			}},
		{name: "channel-xzbomb", group: "channel", put: true, refuse: true, expect: []int{413},
			what: fmt.Sprintf("channel PUT: %d KiB of xz unpacking to %d MiB (limit 64 MiB)", len(p.tarBomb)>>10, tarBombMiB),
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() {
					a.put1(ctx, c, fmt.Sprintf("channels/bomb/nixpkgs/s%d", e.next()), p.tarBomb, nil, false)
				})
			}},
		// 2. narinfo and log bodies
		{name: "narinfo-big", group: "narinfo", put: true, refuse: true, expect: []int{413},
			what: fmt.Sprintf("narinfo PUT of %.1f MiB (with and without Content-Length)", float64(len(p.bigNarInfo))/(1<<20)),
			run: func(ctx context.Context, a *attack, c *http.Client) {
				n := 0
				e.loop(ctx, func() {
					n++
					a.put1(ctx, c, randomHashPart()+".narinfo", p.bigNarInfo, nil, n%2 == 0)
				})
			}},
		{name: "narinfo-xzdict", group: "narinfo", put: true, refuse: true, expect: []int{413},
			what: fmt.Sprintf("narinfo PUT, Content-Encoding xz, %d bytes declaring a 1.5 GiB dictionary", len(p.xzDict)),
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() {
					a.put1(ctx, c, randomHashPart()+".narinfo", p.xzDict, map[string]string{"Content-Encoding": "xz"}, false)
				})
			}},
		{name: "log-gzipbomb", group: "narinfo", put: true, refuse: true, expect: []int{413},
			what: fmt.Sprintf("log PUT, Content-Encoding gzip, %d KiB decoding to %d MiB (limit 256 MiB)", len(p.gzipLog)>>10, logBombMiB),
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() {
					a.put1(ctx, c, "log/"+randomHashPart()+"-evil.drv", p.gzipLog, map[string]string{"Content-Encoding": "gzip"}, false)
				})
			}},
		// 3. NAR files
		{name: "nar-zstdbomb", group: "nar", put: true, refuse: true, expect: []int{413},
			what: fmt.Sprintf("NAR PUT: %d KiB of zstd, a NAR of a %d MiB zero file (max_nar_size 256 MiB)", len(p.zeroNar.Data)>>10, zeroNarSize>>20),
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() { a.put1(ctx, c, p.zeroNar.URL(), p.zeroNar.Data, nil, false) })
			}},
		{name: "nar-listing", group: "nar", put: true, expect: []int{200},
			what: fmt.Sprintf("NAR PUT (%d KiB zstd): %d symlinks with %d KiB targets (%d MiB of NAR), then its narinfo; accepted without a listing",
				len(p.listingNar.Data)>>10, listingLinks, listingTarget>>10, p.listingNar.NarSize>>20),
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() {
					if ans := a.put1(ctx, c, p.listingNar.URL(), p.listingNar.Data, nil, false); ans.status == 200 {
						a.put1(ctx, c, p.listingHash+".narinfo", p.listingInfo, nil, false)
					}
				})
			}},
		// 4. search API
		{name: "search-long", group: "search", refuse: true, expect: []int{400},
			what: "GET /api/search with a query of 3000–4000 characters (limit 256)",
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() {
					q := longQuery(3000 + rand.IntN(1001))
					a.record(ctx, do(ctx, c, req{method: "GET", url: e.url + "/api/search?q=" + url.QueryEscape(q)}))
				})
			}},
		{name: "search-terms", group: "search", refuse: true, expect: []int{400},
			what: "GET /api/search with 17–40 one-letter words (limit 16)",
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() {
					var w []string
					for range 17 + rand.IntN(24) {
						w = append(w, string(rune('a'+rand.IntN(26))))
					}
					a.record(ctx, do(ctx, c, req{method: "GET", url: e.url + "/api/search?q=" + url.QueryEscape(strings.Join(w, " ")),
						token: e.tokens["reader"]}))
				})
			}},
		{name: "package-long", group: "search", refuse: true, expect: []int{400},
			what: "GET /api/packages/<name> of 212–4000 bytes (limit 211)",
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() {
					a.record(ctx, do(ctx, c, req{method: "GET", url: e.url + "/api/packages/" + strings.Repeat("p", 212+rand.IntN(3789))}))
				})
			}},
		// 5. private data and repository names
		{name: "private-anon", group: "oracle", refuse: true, expect: []int{401},
			what: "anonymous GET of priv's narinfos and NARs, directly and through the virtual repository; same bytes as an unknown repository",
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() {
					i := rand.IntN(len(e.privHashes))
					for _, repo := range []string{repoPriv, repoVirtual} {
						for _, rel := range []string{e.privHashes[i] + ".narinfo", e.privNars[i]} {
							a.oracle(ctx, c, repo, rel, "")
						}
					}
				})
			}},
		{name: "private-via-pub", group: "oracle", refuse: true, expect: []int{404},
			what: "anonymous GET of priv's narinfos through the public repository",
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() {
					h := e.privHashes[rand.IntN(len(e.privHashes))]
					a.record(ctx, do(ctx, c, req{method: "GET", url: e.api(repoPub, h+".narinfo")}))
				})
			}},
		{name: "private-token", group: "oracle", refuse: true, expect: []int{404, 403},
			what: "GET of priv (and the virtual repository) by a token that reads only pub (404), and with a wrong password (403); same bytes as an unknown repository",
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() {
					h := e.privHashes[rand.IntN(len(e.privHashes))]
					a.oracle(ctx, c, repoPriv, h+".narinfo", e.tokens["outsider"])
					a.oracle(ctx, c, repoVirtual, h+".narinfo", e.tokens["outsider"])
					a.oracle(ctx, c, repoPriv, h+".narinfo", "not-a-token-"+randomHashPart())
				})
			}},
		{name: "virtual-put", group: "oracle", put: true, refuse: true, expect: []int{403, 405},
			what: "attacker PUTs of a narinfo, a NAR and a channel to the virtual repository",
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() {
					tok := e.tokens["attacker"]
					for _, r := range []req{
						{method: "PUT", url: e.api(repoVirtual, p.listingHash+".narinfo"), token: tok, body: p.listingInfo},
						{method: "PUT", url: e.api(repoVirtual, p.zeroNar.URL()), token: tok, body: p.zeroNar.Data},
						{method: "PUT", url: e.api(repoVirtual, fmt.Sprintf("channels/evil/nixpkgs/v%d", e.next())), token: tok, body: p.symlinkTarball},
					} {
						a.record(ctx, do(ctx, c, r))
					}
				})
			}},
		// 6. slow uploads
		{name: "slowloris-upload", group: "slowloris", put: true, refuse: true, expect: nil,
			what: "uploads (NAR, narinfo, log, channel) trickling a byte every TRICKLE, as many as the slowloris token may open",
			run:  func(ctx context.Context, a *attack, _ *http.Client) { a.slowUpload(ctx) }},
		{name: "slowloris-header", group: "slowloris", put: true, refuse: true, expect: nil, quiet: true,
			what: "PUT requests whose headers trickle a byte every TRICKLE",
			run:  func(ctx context.Context, a *attack, _ *http.Client) { a.slowHeader(ctx) }},
		// 7. Host header
		{name: "host-header", group: "host", expect: []int{200, 302},
			what: "GET of the channel redirects and release page with Host and X-Forwarded-Host: evil; nothing may echo it",
			run: func(ctx context.Context, a *attack, c *http.Client) {
				e.loop(ctx, func() { a.hostHeader(ctx, c) })
			}},
	}
	for _, a := range list {
		if a.conc == 0 {
			a.conc = conc
		}
		a.t = newTally()
		a.env = e
	}
	return list
}

// otherName is a repository name that does not exist, as long as name.
func otherName(name string) string {
	for {
		b := make([]byte, len(name))
		for i := range b {
			b[i] = byte('a' + rand.IntN(26))
		}
		if s := string(b); s != repoPriv && s != repoPub && s != repoVirtual {
			return s
		}
	}
}

// oracle GETs rel of repo and of a repository that does not exist with the
// same credentials, counts the first answer and checks that both are the
// same but for the name: status, headers (but Date) and body.
func (a *attack) oracle(ctx context.Context, c *http.Client, repo, rel, token string) {
	e := a.env
	got := do(ctx, c, req{method: "GET", url: e.api(repo, rel), token: token})
	a.record(ctx, got)
	other := otherName(repo)
	ref := do(ctx, c, req{method: "GET", url: e.api(other, rel), token: token})
	if got.status == 0 || ref.status == 0 {
		return
	}
	norm := func(ans answer, name string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%d\n", ans.status)
		var keys []string
		for k := range ans.header {
			if k != "Date" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(ans.header[k], ", "))
		}
		b.Write(ans.body)
		return strings.ReplaceAll(b.String(), `"`+name+`"`, `"R"`)
	}
	if x, y := norm(got, repo), norm(ref, other); x != y {
		a.t.fail(fmt.Sprintf("repository-name oracle: %s/%s answers %q, unknown %s answers %q", repo, rel, x, other, y))
	}
}

// hostHeader GETs the channel redirects and the release page with a
// hostile Host and checks that no header or body carries it.
func (a *attack) hostHeader(ctx context.Context, c *http.Client) {
	e := a.env
	evil := fmt.Sprintf("evil%d.attacker.example", rand.IntN(1000))
	for _, rel := range []string{"channels/" + channelName, "channels/" + channelName + "/nixexprs.tar.xz", "channels/" + channelName + "/nixpkgs/1"} {
		ans := do(ctx, c, req{method: "GET", url: e.api(repoPub, rel), host: evil,
			header: map[string]string{"X-Forwarded-Host": evil, "X-Forwarded-Proto": "https", "Forwarded": "host=" + evil}})
		a.record(ctx, ans)
		if ans.status == 0 {
			continue
		}
		for k, vs := range ans.header {
			for _, v := range vs {
				if strings.Contains(v, "evil") {
					a.t.fail(fmt.Sprintf("%s: header %s: %s echoes the Host", rel, k, v))
				}
			}
		}
		if strings.Contains(string(ans.body), "evil") {
			a.t.fail(rel + ": the body echoes the Host")
		}
		if ans.status == 302 {
			if loc := ans.header.Get("Location"); strings.Contains(loc, "//") {
				a.t.fail(fmt.Sprintf("%s: Location %q is not relative", rel, loc))
			}
			if l := ans.header.Get("Link"); !strings.HasPrefix(l, "<"+publicURL+"/") {
				a.t.fail(fmt.Sprintf("%s: Link %q does not name the configured public URL", rel, l))
			}
		}
	}
}

// slowUpload keeps SLOW_CONNS raw connections, each an upload whose body
// trickles one byte every e.trickle; an answered one is counted and
// replaced after a second.
func (a *attack) slowUpload(ctx context.Context) {
	e := a.env
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+e.tokens["slowloris"]))
	var wg sync.WaitGroup
	for i := range a.conc {
		wg.Go(func() {
			for n := i; ctx.Err() == nil; n += a.conc {
				var rel, body string
				size := 100 << 20
				switch n % 4 {
				case 0:
					rel, body = "nar/"+randomFileHash()+".nar", "\x0d\x00\x00\x00\x00\x00\x00\x00nix-archive-1\x00\x00\x00"
				case 1:
					rel, body, size = randomHashPart()+".narinfo", "StorePath: /nix/store/"+randomHashPart()+"-slow\n", 512<<10
				case 2:
					rel, body = "log/"+randomHashPart()+"-slow.drv", "building '/nix/store/slow.drv'...\n"
				case 3:
					rel, body = fmt.Sprintf("channels/slow/nixpkgs/s%d", e.next()), "\xfd7zXZ\x00\x00\x04"
				}
				head := fmt.Sprintf("PUT /api/nix/%s/%s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n", repoPriv, rel, auth, size)
				a.trickle(ctx, head, []byte(body), false)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		})
	}
	wg.Wait()
}

// slowHeader keeps connections whose request headers trickle.
func (a *attack) slowHeader(ctx context.Context) {
	var wg sync.WaitGroup
	for range a.conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				head := fmt.Sprintf("PUT /api/nix/%s/%s.narinfo HTTP/1.1\r\nHost: x\r\n", repoPriv, randomHashPart())
				a.trickle(ctx, head, []byte("X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"), true)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		})
	}
	wg.Wait()
}

// trickle sends head, then the bytes of body (repeated) one every
// e.trickle, until the server answers or closes, or ctx is done.
func (a *attack) trickle(ctx context.Context, head string, body []byte, repeat bool) {
	e := a.env
	conn, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		a.record(ctx, answer{err: err})
		return
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(head)); err != nil {
		a.record(ctx, answer{err: err})
		return
	}
	type result struct {
		status int
		body   []byte
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			done <- result{err: err}
			return
		}
		b := make([]byte, 4096)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		done <- result{status: resp.StatusCode, body: b[:n]}
	}()
	tick := time.NewTicker(e.trickle)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			a.t.add("cancelled", "still open when the attack ended")
			return
		case r := <-done:
			if r.err != nil {
				a.t.add("closed", fmt.Sprint(r.err))
				return
			}
			a.record(ctx, answer{status: r.status, body: r.body})
			return
		case <-tick.C:
			if !repeat && i >= len(body) {
				continue
			}
			if _, err := conn.Write(body[i%len(body) : i%len(body)+1]); err != nil {
				// The server closed; its answer, if any, is read above.
				select {
				case r := <-done:
					if r.err == nil {
						a.record(ctx, answer{status: r.status, body: r.body})
						return
					}
				case <-time.After(time.Second):
				}
				a.t.add("closed", fmt.Sprint(err))
				return
			}
		}
	}
}
