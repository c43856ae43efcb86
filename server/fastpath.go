package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nixrepo/nixrepo/internal/store"
)

// The read fast path.
//
// Substituters ask for narinfos by the thousand, one small response each,
// mostly on a few keep-alive connections. Go's net/http spends more time
// per request than the answer itself costs (a goroutine hand-off per
// request, header maps, a buffered writer per response), which on one
// connection made the server slower than nginx. Serve therefore reads
// requests on each connection itself and answers the hot shapes — GET/HEAD
// of <repo>/<hash>.narinfo and <repo>/nix-cache-info, and plain GETs of
// NAR files on folder buckets (fastnar.go), on HTTP/1.1 — directly, with
// the same lookup, authorization and metrics as the net/http handler and
// byte-identical responses (a test compares them). The first request it does not answer (any other route, method or
// protocol version, a body, a percent-encoded or odd target, a header it
// does not want to interpret, a credential problem, a store error) hands
// the connection, with everything already read, to net/http for the rest
// of its life. So every corner case keeps net/http's behaviour.

// maxFastHead bounds the request head the fast path reads; larger heads
// go to net/http, which applies its own limit.
const maxFastHead = 8 << 10

// Serve accepts connections on ln and serves them until hs is shut down
// (hs.Shutdown or hs.Close; Serve then returns http.ErrServerClosed).
// hs.Handler should be s. Plain-HTTP listeners only: for TLS use ServeTLS.
// While it serves, the path journal is flushed every JournalFlushInterval
// and, with Options.Catalog, the catalog is updated every Catalog.Interval.
func (s *Server) Serve(ln net.Listener, hs *http.Server) error {
	hl := &handoffListener{
		Listener: ln,
		conns:    make(chan net.Conn),
		done:     make(chan struct{}),
		fast:     map[net.Conn]struct{}{},
	}
	t := connTimeouts{idle: hs.IdleTimeout, header: hs.ReadHeaderTimeout}
	if t.idle <= 0 {
		t.idle = hs.ReadTimeout
	}
	if t.idle <= 0 {
		t.idle = 2 * time.Minute
	}
	if t.header <= 0 {
		t.header = hs.ReadTimeout
	}
	if t.header <= 0 || t.header > t.idle {
		t.header = t.idle
	}
	go hl.acceptLoop(s, t)
	return s.flushingJournal(func() error { return hs.Serve(hl) })
}

// ServeTLS is Serve for TLS: hs.ServeTLS with the certificate and key
// files, everything through net/http (no fast path).
func (s *Server) ServeTLS(ln net.Listener, hs *http.Server, certFile, keyFile string) error {
	return s.flushingJournal(func() error { return hs.ServeTLS(ln, certFile, keyFile) })
}

// flushingJournal runs serve, writing the path journal notes of uploads and
// pulls every JournalFlushInterval until it returns (Store.Close writes the
// rest), and updating the catalog (Options.Catalog) meanwhile.
func (s *Server) flushingJournal(serve func() error) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	go s.flushJournal(done)
	wg.Go(func() { s.updateCatalog(done) })
	return serve()
}

func (s *Server) flushJournal(done <-chan struct{}) {
	t := time.NewTicker(s.opts.JournalFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := s.st.FlushJournal(ctx); err != nil {
				s.log.Warn("could not write the path journal", "err", err)
			}
			cancel()
		}
	}
}

// handoffListener is the listener net/http serves: it yields the
// connections the fast path hands over. Closing it (net/http does on
// Shutdown) closes the real listener and ends the fast path's idle
// connections.
type handoffListener struct {
	net.Listener
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	acceptErr atomic.Pointer[error]

	mu   sync.Mutex
	fast map[net.Conn]struct{} // connections in the fast path
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		if p := l.acceptErr.Load(); p != nil {
			return nil, *p
		}
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.Listener.Close()
		l.mu.Lock()
		for c := range l.fast {
			// Wakes the connection's read of its next request; a
			// response being written completes first.
			c.SetReadDeadline(time.Unix(1, 0))
		}
		l.mu.Unlock()
	})
	return err
}

// connTimeouts: how long a connection may wait for its next request, and
// for the rest of a request head once it started (net/http's IdleTimeout
// and ReadHeaderTimeout).
type connTimeouts struct{ idle, header time.Duration }

func (l *handoffListener) acceptLoop(s *Server, t connTimeouts) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Like net/http: back off on temporary errors (EMFILE).
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			l.acceptErr.Store(&err)
			l.closeOnce.Do(func() { close(l.done) })
			return
		}
		delay = 0
		if !l.track(c, true) {
			c.Close()
			return
		}
		go s.fastConn(l, c, t)
	}
}

// track adds (or removes) a connection of the fast path; it reports false
// once the listener is closed.
func (l *handoffListener) track(c net.Conn, add bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if add {
		select {
		case <-l.done:
			return false
		default:
		}
		l.fast[c] = struct{}{}
	} else {
		delete(l.fast, c)
	}
	return true
}

// handoff gives c to net/http; br holds what was read and not answered.
func (l *handoffListener) handoff(c net.Conn, br *bufio.Reader) {
	l.track(c, false)
	c.SetReadDeadline(time.Time{})
	hc := &handoffConn{Conn: c}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		hc.pending = bytes.Clone(b)
	}
	putReader(br)
	select {
	case l.conns <- hc:
	case <-l.done:
		c.Close()
	}
}

// handoffConn replays the bytes the fast path read before handing over.
type handoffConn struct {
	net.Conn
	pending []byte
}

func (c *handoffConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// ReadFrom keeps sendfile for net/http's file responses.
func (c *handoffConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// CloseWrite lets net/http half-close, as it does on a bare TCP connection.
func (c *handoffConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, maxFastHead) }}

func getReader(c net.Conn) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(c)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
}

// fastConn serves one connection until it closes or hands over.
func (s *Server) fastConn(l *handoffListener, c net.Conn, t connTimeouts) {
	br := getReader(c)
	var (
		out      = make([]byte, 0, 4096)
		deadline time.Time
	)
	// A request head that has started must complete within the header
	// timeout (slow-loris clients), like net/http's ReadHeaderTimeout.
	started := func() {
		if d := time.Now().Add(t.header); d.Before(deadline) {
			deadline = d
			c.SetReadDeadline(d)
		}
	}
	for {
		now := time.Now()
		// Refresh the idle deadline when half of it is used up, not on
		// every request.
		if deadline.Sub(now) < t.idle/2 {
			deadline = now.Add(t.idle)
			c.SetReadDeadline(deadline)
		}
		n, ok := s.fastRequest(c, br, &out, started)
		if n < 0 { // read error or closed: done
			l.track(c, false)
			putReader(br)
			c.Close()
			return
		}
		if !ok {
			l.handoff(c, br)
			return
		}
		br.Discard(n)
		if len(out) == 0 {
			continue // answered (a NAR)
		}
		if _, err := c.Write(out); err != nil {
			l.track(c, false)
			putReader(br)
			c.Close()
			return
		}
	}
}

// fastRequest parses the next request head from br without consuming it.
// When the fast path answers it, the response is in *out and n is the
// head's length; ok false hands the connection over; n < 0 means the
// connection is finished (closed, timed out or broken).
func (s *Server) fastRequest(c net.Conn, br *bufio.Reader, out *[]byte, started func()) (n int, ok bool) {
	head, err := peekHead(br, started)
	if errors.Is(err, errHeadTooLarge) {
		return 0, false // net/http answers 431
	}
	if err != nil {
		return -1, false // closed, broken or timed out (mid-head too)
	}
	start := time.Now()
	req, good := parseFastHead(head)
	if !good {
		return 0, false
	}
	rest, found := bytes.CutPrefix(req.target, []byte("/api/nix/"))
	if !found {
		return 0, false
	}
	slash := bytes.IndexByte(rest, '/')
	if slash < 0 {
		return 0, false
	}
	repo := s.repos[string(rest[:slash])] // no allocation: map lookup by converted bytes
	if repo == nil {
		return 0, false // net/http's answer does not tell unknown from private
	}
	rel := string(rest[slash+1:])
	k := classify(rel)
	if k != kindCacheInfo && k != kindNarInfo && k != kindNar {
		return 0, false
	}
	if status, _ := s.authorizeHeader(req.auth, repo.Name, repo, false); status != 0 {
		return 0, false // 401/403 with their reasons: net/http
	}
	if k == kindNar {
		*out = (*out)[:0]
		return s.fastNar(c, repo, rel, req, len(head), start)
	}
	var (
		body   []byte
		status = http.StatusOK
	)
	if k == kindCacheInfo {
		body = repo.cacheInfo
	} else {
		hash, _ := store.NarInfoHash(rel)
		var (
			b   []byte
			hit bool
		)
		if repo.localOnly { // (lookupNarInfo tries the cache first)
			var err error
			if b, hit, err = s.lookupNarInfo(context.Background(), repo, hash); err != nil {
				return 0, false // net/http repeats it and reports the error
			}
		} else if b, hit = repo.narinfos.get(hash); !hit {
			return 0, false // may reach upstream: net/http, with a request context
		}
		if hit {
			body = b
		} else {
			status = http.StatusNotFound
			body = notFoundBody
		}
	}
	*out = appendResponse((*out)[:0], k, status, body, req.head)
	written := int64(len(body))
	if req.head {
		written = 0
	}
	s.metrics.observe(k, req.method, status, written, time.Since(start))
	return len(head), true
}

var notFoundBody = []byte("not found\n")

// appendResponse writes the response net/http writes for the same answer
// of the handler: the status line, the handler's headers sorted by name,
// then the ones net/http adds (Date, and Content-Length when it computed
// it).
func appendResponse(b []byte, k kind, status int, body []byte, head bool) []byte {
	if status == http.StatusOK {
		b = append(b, "HTTP/1.1 200 OK\r\n"...)
		if k == kindNarInfo {
			b = append(b, "Cache-Control: "...)
			b = append(b, hdrNarInfoCache[0]...)
			b = append(b, "\r\n"...)
		}
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\nContent-Type: "...)
		if k == kindNarInfo {
			b = append(b, hdrNarInfo[0]...)
		} else {
			b = append(b, hdrCacheInfo[0]...)
		}
		b = append(b, "\r\nX-Content-Type-Options: nosniff\r\nDate: "...)
		b = append(b, httpDate()...)
	} else {
		b = append(b, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: "...)
		b = append(b, httpDate()...)
		b = append(b, "\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
	}
	b = append(b, "\r\n\r\n"...)
	if !head {
		b = append(b, body...)
	}
	return b
}

// httpDate is the Date header value, formatted once a second.
func httpDate() []byte {
	now := time.Now()
	sec := now.Unix()
	if d := cachedDate.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &dateText{sec: sec, text: now.UTC().AppendFormat(nil, http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	sec  int64
	text []byte
}

var cachedDate atomic.Pointer[dateText]

// peekHead returns the request head (through the blank line) without
// consuming it. An error with a non-empty head means it is incomplete
// (the connection ended or the head is too large). started is called when
// it must wait for the rest of a head it has the beginning of.
func peekHead(br *bufio.Reader, started func()) ([]byte, error) {
	// Most heads arrive in one segment: look at what is buffered first.
	for told := false; ; {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf[:i+4], nil
		}
		if br.Buffered() >= maxFastHead {
			return buf, errHeadTooLarge
		}
		// Wait for more bytes.
		if br.Buffered() > 0 && !told && started != nil {
			started()
			told = true
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			b, _ := br.Peek(br.Buffered())
			return b, err
		}
	}
}

var (
	errHeadTooLarge = errors.New("request head too large")
)

type fastHead struct {
	method string // "GET" or "HEAD" (constants, no allocation)
	head   bool
	target []byte
	auth   string
	// cond: Range or a conditional header (If-*): the answer may be a
	// 206 or 304, which only net/http gives.
	cond bool
}

// parseFastHead accepts only the plain requests the fast path answers:
// GET or HEAD, an origin-form target of path characters only (no query,
// no percent-encoding, no dot segments), HTTP/1.1, exactly one Host, at
// most one Authorization, no body, no Expect, no Connection other than
// keep-alive, well-formed header lines. Anything else is not ok.
func parseFastHead(h []byte) (fastHead, bool) {
	var r fastHead
	eol := bytes.Index(h, []byte("\r\n"))
	line := h[:eol]
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		r.method, line = http.MethodGet, line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		r.method, r.head, line = http.MethodHead, true, line[5:]
	default:
		return r, false
	}
	target, ok := bytes.CutSuffix(line, []byte(" HTTP/1.1"))
	if !ok || len(target) == 0 || target[0] != '/' {
		return r, false
	}
	for i, c := range target {
		if !pathByte(c) || c == '.' && i > 0 && target[i-1] == '/' || c == '/' && i > 0 && target[i-1] == '/' {
			return r, false
		}
	}
	r.target = target
	hosts, auths := 0, 0
	for rest := h[eol+2 : len(h)-2]; len(rest) > 0; {
		eol := bytes.Index(rest, []byte("\r\n"))
		if eol < 0 {
			return r, false
		}
		line := rest[:eol]
		rest = rest[eol+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return r, false
		}
		name := line[:colon]
		for _, c := range name {
			if !tokenByte(c) {
				return r, false // includes obs-fold (leading space)
			}
		}
		value := bytes.Trim(line[colon+1:], " \t")
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return r, false
			}
		}
		switch n := string(name); {
		case strings.EqualFold(n, "Host"):
			hosts++
		case strings.EqualFold(n, "Authorization"):
			auths++
			r.auth = string(value)
		case strings.EqualFold(n, "Connection"):
			if !strings.EqualFold(string(value), "keep-alive") {
				return r, false
			}
		case strings.EqualFold(n, "Content-Length"):
			if string(value) != "0" {
				return r, false
			}
		case strings.EqualFold(n, "Transfer-Encoding"), strings.EqualFold(n, "Expect"), strings.EqualFold(n, "Upgrade"):
			return r, false
		case strings.EqualFold(n, "Range"), len(n) > 3 && strings.EqualFold(n[:3], "If-"):
			r.cond = true
		}
	}
	if hosts != 1 || auths > 1 {
		return r, false
	}
	return r, true
}

// pathByte: unreserved characters and the sub-delimiters Nix URLs use;
// no '%', '?', '#' or ';'.
func pathByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '/' || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '='
}

// tokenByte: RFC 9110 token characters.
func tokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
