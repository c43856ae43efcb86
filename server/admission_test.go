package server_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/server"
)

// slowUpload is a PUT whose body trickles in: chunk bytes every interval,
// on its own connection, read back concurrently (the server may answer
// before the body is complete).
type slowUpload struct {
	conn  net.Conn
	start time.Time
	done  chan slowResult
}

type slowResult struct {
	status int
	text   string
	took   time.Duration
}

// startSlowUpload sends the head of a PUT of body to path and then the
// body, chunk bytes every interval. chunked sends it with
// Transfer-Encoding: chunked (no Content-Length).
func startSlowUpload(t *testing.T, e *env, path string, c cred, body []byte, chunk int, interval time.Duration, chunked bool) *slowUpload {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	u := &slowUpload{conn: conn, start: time.Now(), done: make(chan slowResult, 1)}
	framing := fmt.Sprintf("Content-Length: %d\r\n", len(body))
	if chunked {
		framing = "Transfer-Encoding: chunked\r\n"
	}
	if _, err := fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\n%s%s\r\n", path, c.header(), framing); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		for off := 0; off < len(body); off += chunk {
			select {
			case <-stop:
				return
			case <-time.After(interval):
			}
			b := body[off:min(off+chunk, len(body))]
			var err error
			if chunked {
				_, err = fmt.Fprintf(conn, "%x\r\n%s\r\n", len(b), b)
			} else {
				_, err = conn.Write(b)
			}
			if err != nil {
				return
			}
		}
		if chunked {
			conn.Write([]byte("0\r\n\r\n"))
		}
	}()
	go func() {
		status, text := readRawResponse(conn)
		close(stop)
		u.done <- slowResult{status, text, time.Since(u.start)}
	}()
	return u
}

// answered reports whether the server has answered the upload yet.
func (u *slowUpload) answered() bool {
	select {
	case r := <-u.done:
		u.done <- r
		return true
	default:
		return false
	}
}

// wait is the upload's answer, or status 0 when none came within d.
func (u *slowUpload) wait(d time.Duration) slowResult {
	select {
	case r := <-u.done:
		return r
	case <-time.After(d):
		return slowResult{0, "no answer", d}
	}
}

// noRetriedPutStatuses fails when any PUT the server answered got a status
// Nix ≤ 2.32 retries (and then hangs on): 5xx, 202, 408 or 429.
func noRetriedPutStatuses(t *testing.T, e *env) {
	t.Helper()
	m := e.metrics()
	for _, code := range []string{"500", "502", "503", "504", "408", "429", "202"} {
		if v, ok := metricValue(m, "nixrepo_http_requests_total", map[string]string{"method": "PUT", "code": code}); ok && v > 0 {
			t.Errorf("%v PUTs were answered %s", v, code)
		}
	}
}

// admissionOptions: defaultOptions plus a token "slow" that may upload to
// both repositories (so three tokens and two repositories share slots).
func admissionOptions() *server.Options {
	o := defaultOptions()
	o.Tokens = append(o.Tokens, server.Token{Name: "slow", SHA256: server.HashToken("slow-secret"), Write: []string{"r", "other"}})
	return o
}

var slowCred = cred{name: "slow", user: "nix", pass: "slow-secret"}

// TestUploadSlowlorisCannotStarveOtherTokens: a token that keeps more
// uploads open than there are slots, each sending a byte now and then
// (well within the stall timeout), holds only its share of the slots:
// another token's upload, to the same repository and to another one,
// still completes at once. Before per-token admission the slow uploads
// held every slot and the others waited for them.
func TestUploadSlowlorisCannotStarveOtherTokens(t *testing.T) {
	o := admissionOptions()
	o.MaxUploads = 8 // so 2 per token, 4 per repository
	e := newEnv(t, nil, o)
	// A real NAR file (the upload fails at its first wrong byte): at 10
	// bytes a second it takes 38 s.
	nar := sample(t, helloNar)
	for i := range 10 {
		repo := []string{"r", "other"}[i%2]
		startSlowUpload(t, e, "/api/nix/"+repo+"/"+helloNar, slowCred, nar, 1, 100*time.Millisecond, false)
	}
	time.Sleep(time.Second) // every slow upload has arrived (holds a slot or waits)
	for _, c := range []struct {
		repo string
		who  cred
		rel  string
	}{{"r", writer, libNar}, {"other", stranger, dataNar}} {
		r := putWithin(t, e, "/api/nix/"+c.repo+"/"+c.rel, c.who, sample(t, c.rel), 10*time.Second)
		if r.status != http.StatusOK || r.took > 5*time.Second {
			t.Errorf("upload of %s to %s while another token trickles: %d %q after %s, want 200 at once", c.who.name, c.repo, r.status, r.text, r.took)
		}
	}
	if a, w := e.metric("nixrepo_uploads_active", nil), e.metric("nixrepo_uploads_waiting", nil); a != 2 || w != 8 {
		t.Errorf("slow token: %v uploads hold slots and %v wait, want 2 (max_uploads_per_token) and 8", a, w)
	}
	noRetriedPutStatuses(t, e)
}

// putRoutes is every PUT route, with a body (what it holds does not matter
// to the admission).
var putRoutes = []string{
	"nix-cache-info",
	dataHash + ".narinfo",
	dataHash + ".ls",
	helloNar,
	"log/" + libDrv,
	"realisations/sha256:" + strings.Repeat("c", 64) + "!out.doi",
	"channels/c/nixpkgs/1",
	"channels/c/nixpkgs/1/nixexprs.tar.xz",
	"channels/c/nixpkgs/1/git-revision",
}

// TestUploadBelowMinimumRateRefused: on every PUT route, an upload that
// trickles (20 bytes/s, never silent long enough to stall) is refused
// with a 400 naming upload_min_rate once upload_timeout has passed, with
// and without a Content-Length. Before, it held its slot for as long as it
// kept trickling.
func TestUploadBelowMinimumRateRefused(t *testing.T) {
	o := defaultOptions()
	o.UploadTimeout = 400 * time.Millisecond
	o.UploadMinRate = 1 << 10
	o.UploadStallTimeout = 5 * time.Second
	e := newEnv(t, nil, o)
	for _, rel := range putRoutes {
		// Every route reads the body as it comes, and a NAR file and a
		// listing are checked as they come: they must look real.
		body := []byte(strings.Repeat("x", 2000))
		switch rel {
		case helloNar:
			body = sample(t, helloNar)
		case dataHash + ".ls":
			body = []byte(`{"version":1,"root":{"type":"symlink","target":"` + strings.Repeat("x", 2000) + `"}}`)
		}
		for _, chunked := range []bool{false, true} {
			what := fmt.Sprintf("%s (chunked %v)", rel, chunked)
			u := startSlowUpload(t, e, "/api/nix/r/"+rel, writer, body, 1, 50*time.Millisecond, chunked)
			r := u.wait(15 * time.Second)
			checkPutStatus(t, rel, r.status)
			switch {
			case r.status != http.StatusBadRequest || !strings.Contains(r.text, "too slow") || !strings.Contains(r.text, "upload_min_rate") || !strings.Contains(r.text, "1 KiB/s"):
				t.Errorf("%s: got %d %q after %s, want 400 too slow naming upload_min_rate", what, r.status, r.text, r.took)
			case r.took < o.UploadTimeout || r.took > 8*time.Second:
				t.Errorf("%s: refused after %s; the rule applies from %s on", what, r.took, o.UploadTimeout)
			}
		}
	}
	if k := channelKeysOf(t, e, "r"); len(k) != 0 {
		t.Errorf("refused channel uploads left %v", k)
	}
	noRetriedPutStatuses(t, e)
}

// TestUploadAboveMinimumRateAccepted: the rate rule is not a fixed
// deadline: an upload that runs past upload_timeout at a rate above
// upload_min_rate is accepted.
func TestUploadAboveMinimumRateAccepted(t *testing.T) {
	o := defaultOptions()
	o.UploadTimeout = 300 * time.Millisecond
	o.UploadMinRate = 1 << 10
	e := newEnv(t, nil, o)
	body := []byte(strings.Repeat("build output line\n", 230)) // 4140 bytes, ~5 KiB/s: 0.8 s
	for _, chunked := range []bool{false, true} {
		u := startSlowUpload(t, e, "/api/nix/r/log/"+libDrv, writer, body, 512, 100*time.Millisecond, chunked)
		r := u.wait(15 * time.Second)
		if r.status != http.StatusOK || r.took < o.UploadTimeout {
			t.Errorf("chunked %v: %d %q after %s, want 200 after more than %s", chunked, r.status, r.text, r.took, o.UploadTimeout)
		}
		e.st.Delete(t.Context(), "r/log/"+libDrv)
	}
}

// TestUploadQueueTimeoutRefused: on every PUT route, an upload that finds
// no free slot for upload_queue_timeout gets a 400 naming the limits, not
// an endless wait. Before, it waited for as long as the slot was held.
func TestUploadQueueTimeoutRefused(t *testing.T) {
	o := defaultOptions()
	o.MaxUploads = 1
	o.UploadQueueTimeout = 300 * time.Millisecond
	e := newEnv(t, nil, o)
	holder := startSlowUpload(t, e, "/api/nix/r/"+helloNar, writer, sample(t, helloNar), 1, 100*time.Millisecond, false)
	waitActive(t, e, 1)
	for _, rel := range putRoutes {
		for _, who := range []cred{writer, stranger} {
			repo := map[string]string{writer.name: "r", stranger.name: "other"}[who.name]
			start := time.Now()
			r := putWithin(t, e, "/api/nix/"+repo+"/"+rel, who, []byte("x"), 10*time.Second)
			took := time.Since(start)
			checkPutStatus(t, rel, r.status)
			if r.status != http.StatusBadRequest || !strings.Contains(r.text, "upload_queue_timeout") || !strings.Contains(r.text, "max_uploads") {
				t.Errorf("%s by %s with every slot busy: %d %q after %s, want 400 naming upload_queue_timeout", rel, who.name, r.status, r.text, took)
			}
		}
	}
	if holder.answered() {
		t.Errorf("the slot holder was answered: %+v", holder.wait(0))
	}
	if w := e.metric("nixrepo_uploads_waiting", nil); w != 0 {
		t.Errorf("%v uploads still wait after timing out", w)
	}
	noRetriedPutStatuses(t, e)
}

// TestUploadQueueFullRefused: past max_queued_uploads_per_token waiting
// uploads, a token's next upload is refused at once with a 400 naming the
// limit; another token still queues.
func TestUploadQueueFullRefused(t *testing.T) {
	o := defaultOptions()
	o.MaxUploads = 1
	o.MaxQueuedUploadsPerToken = 1
	o.UploadQueueTimeout = 5 * time.Second
	e := newEnv(t, nil, o)
	startSlowUpload(t, e, "/api/nix/r/"+helloNar, writer, sample(t, helloNar), 1, 100*time.Millisecond, false)
	waitActive(t, e, 1)
	startSlowUpload(t, e, "/api/nix/r/"+libNar, writer, sample(t, libNar), 1, 100*time.Millisecond, false)
	deadline := time.Now().Add(10 * time.Second)
	for e.metric("nixrepo_uploads_waiting", nil) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second upload does not wait")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	r := putWithin(t, e, "/api/nix/r/"+dataNar, writer, sample(t, dataNar), 10*time.Second)
	if took := time.Since(start); r.status != http.StatusBadRequest || !strings.Contains(r.text, "max_queued_uploads_per_token") || took > 2*time.Second {
		t.Errorf("third upload of a token with a full queue: %d %q after %s, want 400 at once naming max_queued_uploads_per_token", r.status, r.text, took)
	}
	r = putWithin(t, e, "/api/nix/other/"+dataNar, stranger, sample(t, dataNar), 10*time.Second)
	if r.status != http.StatusBadRequest || !strings.Contains(r.text, "upload_queue_timeout") {
		t.Errorf("another token's upload: %d %q, want it queued, then refused for upload_queue_timeout", r.status, r.text)
	}
	noRetriedPutStatuses(t, e)
}

func waitActive(t *testing.T, e *env, n float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.metric("nixrepo_uploads_active", nil) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %v uploads hold slots:\n%s", n, e.metrics())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// putWithin is a PUT that gives up after d (status 0) instead of failing
// the test, so a server that makes it wait shows as a wrong answer.
func putWithin(t *testing.T, e *env, path string, c cred, body []byte, d time.Duration) slowResult {
	t.Helper()
	u := startSlowUpload(t, e, path, c, body, len(body), 0, false)
	return u.wait(d)
}

func channelKeysOf(t *testing.T, e *env, repo string) []string {
	t.Helper()
	var keys []string
	for k := range snapshot(t, e.st) {
		if strings.HasPrefix(k, repo+"/channels/") {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestQueuedUploadLeavesWhenClientGoes: an upload waiting for a slot whose
// client closes its connection leaves the queue at once, not when
// upload_queue_timeout ends, whatever it had sent of its body: nothing, a
// part, all of it, or only the head with "Expect: 100-continue". An upload
// that stays waits and, once admitted, is stored whole, its body read on
// from where the server's wait left it.
func TestQueuedUploadLeavesWhenClientGoes(t *testing.T) {
	o := defaultOptions()
	o.MaxUploads = 1
	o.UploadQueueTimeout = time.Minute
	e := newEnv(t, nil, o)
	holder := startSlowUpload(t, e, "/api/nix/r/"+helloNar, writer, sample(t, helloNar), 1, 20*time.Millisecond, false)
	waitActive(t, e, 1)
	nar := sample(t, dataNar)
	for _, tc := range []struct {
		name, head string
		body       []byte
	}{
		{"head only", fmt.Sprintf("Content-Length: %d\r\n", len(nar)), nil},
		{"part of the body", fmt.Sprintf("Content-Length: %d\r\n", len(nar)), nar[:len(nar)/2]},
		{"the whole body", fmt.Sprintf("Content-Length: %d\r\n", len(nar)), nar},
		{"chunked, part", "Transfer-Encoding: chunked\r\n", fmt.Appendf(nil, "%x\r\n%s\r\n", 10, nar[:10])},
		{"Expect: 100-continue", fmt.Sprintf("Content-Length: %d\r\nExpect: 100-continue\r\n", len(nar)), nil},
	} {
		conn, err := net.Dial("tcp", e.addr())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "PUT /api/nix/r/%s HTTP/1.1\r\nHost: x\r\n%s%s\r\n", dataNar, writer.header(), tc.head)
		conn.Write(tc.body)
		deadline := time.Now().Add(10 * time.Second)
		for e.metric("nixrepo_uploads_waiting", nil) < 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the upload does not wait", tc.name)
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // the server is in its wait
		conn.Close()
		start := time.Now()
		for e.metric("nixrepo_uploads_waiting", nil) > 0 {
			if time.Since(start) > 3*time.Second {
				t.Fatalf("%s: the upload of a client that went away still waits after %s (upload_queue_timeout is %s)", tc.name, time.Since(start), o.UploadQueueTimeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if holder.answered() {
		t.Fatalf("the slot holder was answered: %+v", holder.wait(0))
	}
	// An upload that stays is admitted once the holder is done, and its
	// body, partly read while it waited, arrives whole.
	log := bytes.Repeat([]byte("a line of a build log\n"), 8000)
	queued := startSlowUpload(t, e, "/api/nix/r/log/"+libDrv, writer, log, 4096, time.Millisecond, false)
	if r := holder.wait(30 * time.Second); r.status != http.StatusOK {
		t.Fatalf("slot holder: %d %q", r.status, r.text)
	}
	if r := queued.wait(30 * time.Second); r.status != http.StatusOK {
		t.Fatalf("queued upload: %d %q", r.status, r.text)
	}
	if got := e.get("/api/nix/r/log/"+libDrv, writer); !bytes.Equal(got.body, log) {
		t.Errorf("the stored log differs from the upload: %d bytes, want %d", len(got.body), len(log))
	}
	noRetriedPutStatuses(t, e)
}
