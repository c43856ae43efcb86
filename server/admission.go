package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Upload admission.
//
// Every PUT (binary-cache objects and channel snapshots alike) takes an
// upload slot before its body is read and keeps it until it is answered.
// There are MaxUploads slots in all; one token holds at most
// MaxUploadsPerToken of them and uploads to one repository at most
// MaxUploadsPerRepo, so a token that keeps slow uploads open can never
// take every slot, nor can uploads to one repository starve another's.
// An upload that finds no slot waits in its token's queue (at most
// MaxQueuedUploadsPerToken waiting, then it is refused); a freed slot goes
// to the tokens with waiting uploads in turn (round robin), each token's
// uploads in arrival order, skipping an upload whose repository is at its
// cap. An upload waits at most UploadQueueTimeout, and leaves the queue as
// soon as its client goes away (see readAhead). A channel upload then waits
// in a second admission, of MaxConcurrentUnpacks slots, before its tarball
// is unpacked (admitUnpack).
//
// Once admitted, an upload has UploadTimeout to send its body; past that
// its average rate, counted over the time the server waited for its
// bytes, must stay at or above UploadMinRate. So an upload of N bytes has
// max(UploadTimeout, N/UploadMinRate) of waiting in all, and any upload at
// most max(UploadTimeout, MaxObjectSize/UploadMinRate). Independently, an
// upload that sends nothing for UploadStallTimeout is refused. Time the
// server spends on its own (verifying, writing to the bucket) does not
// count against the client.
//
// Every refusal is a 400 with a reason naming the limit: Nix ≤ 2.32
// retries a PUT answered 5xx, 408 or 429 with an empty body and hangs.

var (
	errQueueFull    = errors.New("upload queue full")
	errQueueTimeout = errors.New("no upload slot")
	errStalled      = errors.New("upload stalled")
	errTooSlow      = errors.New("upload too slow")
	errNoUnpackSlot = errors.New("no channel unpack slot")
)

// admission hands out upload slots fairly across tokens and repositories.
type admission struct {
	total, perToken, perRepo, queuedPerToken int

	mu      sync.Mutex
	active  int
	byToken map[string]int
	byRepo  map[string]int
	queues  map[string][]*waiter // waiting uploads by token, oldest first
	ring    []string             // tokens with waiting uploads, in turn order
	turn    int                  // index in ring of the token served next
}

type waiter struct {
	token, repo string
	ready       chan struct{} // closed when granted
	granted     bool
}

func newAdmission(total, perToken, perRepo, queuedPerToken int) *admission {
	return &admission{
		total: total, perToken: min(perToken, total), perRepo: min(perRepo, total), queuedPerToken: queuedPerToken,
		byToken: map[string]int{}, byRepo: map[string]int{}, queues: map[string][]*waiter{},
	}
}

// acquire takes a slot for an upload of token to repo, waiting at most
// timeout. It fails with errQueueFull, errQueueTimeout or ctx's error; an
// upload whose ctx ends leaves the queue at once. queued, when not nil, is
// called (without the lock) once the upload has to wait.
func (a *admission) acquire(ctx context.Context, token, repo string, timeout time.Duration, queued func()) error {
	a.mu.Lock()
	// Waiting uploads are served first: a free slot coexists with waiting
	// uploads only when none of them may take it.
	if a.fits(token, repo) {
		a.take(token, repo)
		a.mu.Unlock()
		return nil
	}
	q := a.queues[token]
	if len(q) >= a.queuedPerToken {
		a.mu.Unlock()
		return errQueueFull
	}
	w := &waiter{token: token, repo: repo, ready: make(chan struct{})}
	if len(q) == 0 {
		a.ring = append(a.ring, token)
	}
	a.queues[token] = append(q, w)
	a.mu.Unlock()
	if queued != nil {
		queued()
	}

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = errQueueTimeout
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if w.granted { // granted meanwhile
		if err == errQueueTimeout {
			return nil
		}
		a.give(token, repo)
		a.dispatch()
		return err
	}
	a.dequeue(w)
	return err
}

// release returns the slot of an upload of token to repo.
func (a *admission) release(token, repo string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.give(token, repo)
	a.dispatch()
}

// counts reports the slots in use and the uploads waiting.
func (a *admission) counts() (active, waiting int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, q := range a.queues {
		waiting += len(q)
	}
	return a.active, waiting
}

func (a *admission) fits(token, repo string) bool {
	return a.active < a.total && a.byToken[token] < a.perToken && a.byRepo[repo] < a.perRepo
}

func (a *admission) take(token, repo string) {
	a.active++
	a.byToken[token]++
	a.byRepo[repo]++
}

func (a *admission) give(token, repo string) {
	a.active--
	if a.byToken[token]--; a.byToken[token] == 0 {
		delete(a.byToken, token)
	}
	if a.byRepo[repo]--; a.byRepo[repo] == 0 {
		delete(a.byRepo, repo)
	}
}

// dispatch grants free slots to waiting uploads, one token after the other.
func (a *admission) dispatch() {
	for a.active < a.total && len(a.ring) > 0 {
		granted := false
		for i := range len(a.ring) {
			idx := (a.turn + i) % len(a.ring)
			token := a.ring[idx]
			if a.byToken[token] >= a.perToken {
				continue
			}
			q := a.queues[token]
			j := slices.IndexFunc(q, func(w *waiter) bool { return a.byRepo[w.repo] < a.perRepo })
			if j < 0 {
				continue
			}
			w := q[j]
			a.take(token, w.repo)
			w.granted = true
			close(w.ready)
			a.turn = idx + 1
			a.unqueue(token, j, idx)
			granted = true
			break
		}
		if !granted {
			return
		}
	}
}

// dequeue removes a waiting upload that gave up.
func (a *admission) dequeue(w *waiter) {
	q := a.queues[w.token]
	if j := slices.Index(q, w); j >= 0 {
		a.unqueue(w.token, j, slices.Index(a.ring, w.token))
	}
}

// unqueue drops entry j of token's queue; idx is token's place in the ring,
// which it leaves when its queue empties.
func (a *admission) unqueue(token string, j, idx int) {
	q := slices.Delete(a.queues[token], j, j+1)
	if len(q) > 0 {
		a.queues[token] = q
	} else {
		delete(a.queues, token)
		a.ring = slices.Delete(a.ring, idx, idx+1)
		if idx < a.turn {
			a.turn--
		}
	}
	if len(a.ring) == 0 {
		a.turn = 0
	} else {
		a.turn %= len(a.ring)
	}
}

// beginUpload applies the size limit (413 on a declared oversize body) and
// takes an upload slot for the request's token (see above). The body it
// returns enforces the stall timeout and the minimum rate. ok is false
// when the request was answered (a 4xx) or abandoned.
func (s *Server) beginUpload(w http.ResponseWriter, r *http.Request, k kind, repo *repoState) (body *uploadBody, release func(), ok bool) {
	if r.ContentLength > s.opts.MaxObjectSize {
		s.metrics.upload(k, "refused")
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("upload of %d bytes exceeds the limit of %d bytes (max_object_size)", r.ContentLength, s.opts.MaxObjectSize))
		return nil, nil, false
	}
	token := s.uploader(r)
	rc := http.NewResponseController(w)
	ahead := &readAhead{r: r.Body}
	err := s.admit.acquire(r.Context(), token, repo.Name, s.opts.UploadQueueTimeout, ahead.start)
	if err != nil {
		ahead.abandon(rc)
		var msg string
		switch err {
		case errQueueFull:
			msg = fmt.Sprintf("%v: token %s already has %d uploads waiting for a slot (max_queued_uploads_per_token); retry when some have finished", err, token, s.admit.queuedPerToken)
		case errQueueTimeout:
			msg = fmt.Sprintf("%v within %s (upload_queue_timeout): the server's %d upload slots (max_uploads; at most %d per token, %d per repository) stayed busy; retry later",
				err, s.opts.UploadQueueTimeout, s.admit.total, s.admit.perToken, s.admit.perRepo)
		default:
			return nil, nil, false // the client went away
		}
		s.metrics.upload(k, "refused")
		s.log.Info("upload refused", "repo", repo.Name, "token", token, "path", r.URL.Path, "reason", msg)
		httpError(w, http.StatusBadRequest, msg)
		return nil, nil, false
	}
	ahead.stop()
	body = &uploadBody{r: ahead, rc: rc, stall: s.opts.UploadStallTimeout,
		grace: s.opts.UploadTimeout, rate: s.opts.UploadMinRate}
	return body, func() { s.admit.release(token, repo.Name) }, true
}

// readAheadMax bounds what a waiting upload's body is read ahead.
const readAheadMax = 16 << 10

// readAhead reads an upload's body while the upload waits for a slot, so
// that a client that goes away takes its upload out of the queue at once.
// net/http notices a closed connection only while it reads from it, and
// with a request body it reads only when the handler does: a waiting
// upload's context would stay alive until the queue timeout. A body read
// that fails cancels the request's context (net/http does that on any read
// error of the connection), and a body read to its end makes net/http
// watch the connection, which cancels the context when the client closes
// it later. Reading also answers "Expect: 100-continue", so such a client
// sends its body while it waits.
//
// At most readAheadMax bytes are read ahead: an upload whose client goes
// away after sending more than that keeps its place until its turn (or the
// queue timeout), and is then refused at once when its body fails.
//
// Once the upload is admitted, Read returns what was read ahead, then the
// result of the read in flight when the wait ended, then reads the body
// itself; the caller's read deadlines apply to the read in flight too.
type readAhead struct {
	r io.Reader

	mu      sync.Mutex
	stopped bool

	// done is closed when the reading goroutine has ended (nil: it never
	// started); buf and err are set before and read after.
	done chan struct{}
	buf  []byte
	off  int
	err  error
}

// start reads the body ahead, until it ends, fails, fills readAheadMax or
// stop is called.
func (a *readAhead) start() {
	a.done = make(chan struct{})
	go func() {
		defer close(a.done)
		buf := make([]byte, readAheadMax)
		n := 0
		for n < len(buf) && !a.isStopped() {
			m, err := a.r.Read(buf[n:])
			n += m
			if err != nil {
				a.err = err
				break
			}
		}
		a.buf = buf[:n]
	}()
}

func (a *readAhead) isStopped() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stopped
}

// stop ends the reading ahead after the read in flight, if any.
func (a *readAhead) stop() {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
}

// abandon stops the reading ahead of an upload that is not admitted: the
// read in flight is cut off (moving the connection's read deadline) and
// waited for, so that nothing reads the body once the handler returns.
func (a *readAhead) abandon(rc *http.ResponseController) {
	a.stop()
	if a.done == nil {
		return
	}
	_ = rc.SetReadDeadline(time.Now())
	<-a.done
}

func (a *readAhead) Read(p []byte) (int, error) {
	if a.done != nil {
		<-a.done
		if a.off < len(a.buf) {
			n := copy(p, a.buf[a.off:])
			a.off += n
			return n, nil
		}
		if a.err != nil {
			return 0, a.err
		}
	}
	return a.r.Read(p)
}

// admitUnpack is the wait of a channel upload of token to repo for its turn
// to be unpacked (Options.MaxConcurrentUnpacks), as channel.PushOptions'
// AdmitUnpack. The upload keeps its upload slot meanwhile; it waits at most
// UploadQueueTimeout, then the error wraps errNoUnpackSlot.
func (s *Server) admitUnpack(token, repo string) func(context.Context) (func(), error) {
	return func(ctx context.Context) (func(), error) {
		switch err := s.unpacks.acquire(ctx, token, repo, s.opts.UploadQueueTimeout, nil); err {
		case nil:
			return func() { s.unpacks.release(token, repo) }, nil
		case errQueueTimeout, errQueueFull:
			return nil, fmt.Errorf("%w within %s (upload_queue_timeout): the server unpacks at most %d channel tarballs at once (max_concurrent_unpacks) and they stayed busy; retry later",
				errNoUnpackSlot, s.opts.UploadQueueTimeout, s.unpacks.total)
		default:
			return nil, err
		}
	}
}

// uploader names the token of an authorized upload (uploads always carry
// one).
func (s *Server) uploader(r *http.Request) string {
	password, _ := basicPassword(r.Header.Get("Authorization"))
	if tok := s.lookupToken(password); tok != nil {
		return tok.Name
	}
	return ""
}

// uploadBody is an upload's body under its time limits: before every read
// it moves the connection's read deadline to the earlier of the stall
// timeout and the moment the upload falls below the minimum rate.
type uploadBody struct {
	r     io.Reader
	rc    *http.ResponseController
	stall time.Duration
	grace time.Duration // UploadTimeout: no rate requirement before
	rate  int64         // bytes per second
	n     int64         // bytes received
	// waited is the time spent in reads: waiting for the client.
	waited time.Duration
	// err is why the upload was cut off (errStalled or errTooSlow).
	err error
}

// allowed is how long, in all, the upload may have waited for n bytes.
func (b *uploadBody) allowed(n int64) time.Duration {
	return max(b.grace, time.Duration(float64(n)/float64(b.rate)*float64(time.Second)))
}

func (b *uploadBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	now := time.Now()
	deadline, slow := now.Add(b.stall), false
	left := b.allowed(b.n) - b.waited
	if left <= 0 {
		b.err = b.tooSlow()
		return 0, b.err
	}
	if d := now.Add(left); d.Before(deadline) {
		deadline, slow = d, true
	}
	_ = b.rc.SetReadDeadline(deadline)
	n, err := b.r.Read(p)
	b.waited += time.Since(now)
	b.n += int64(n)
	if err != nil && err != io.EOF && isTimeout(err) {
		if slow {
			b.err = b.tooSlow()
		} else {
			b.err = fmt.Errorf("%w: nothing received for %s (upload_stall_timeout)", errStalled, b.stall)
		}
		return n, b.err
	}
	return n, err
}

func (b *uploadBody) tooSlow() error {
	return fmt.Errorf("%w: %d bytes in %s; after %s (upload_timeout) an upload must average at least %s/s (upload_min_rate)",
		errTooSlow, b.n, b.waited.Round(time.Millisecond), b.grace, formatBytes(b.rate))
}

// failure is why the upload was cut off, if it was.
func (b *uploadBody) failure() error { return b.err }

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// formatBytes writes n with a binary unit when it is a whole number of one.
func formatBytes(n int64) string {
	for _, u := range []struct {
		s string
		v int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.v && n%u.v == 0 {
			return fmt.Sprintf("%d %s", n/u.v, u.s)
		}
	}
	return fmt.Sprintf("%d B", n)
}
