package server

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// NAR files on the fast path.
//
// A NAR file of a local repository on a folder bucket, asked for with a
// plain GET (no Range, no conditional header), is sent by the fast path
// with sendfile on the socket switched to blocking mode for the body: the
// kernel then streams the whole file in one system call, where Go's
// sendfile waits for the poller after every socket-buffer-full (which on
// one connection made it slower than nginx). The connection holds an OS
// thread meanwhile, so at most maxBlockingSends run at once (more go
// through net/http), and a client that stops reading for narSendStall is
// dropped. Headers are those net/http's ServeContent writes.

const (
	maxBlockingSends = 256
	narSendStall     = 5 * time.Minute
)

var (
	blockingSends = make(chan struct{}, maxBlockingSends)
	errSendStall  = errors.New("client stopped reading")
)

// fastNar answers a NAR GET, or returns ok false having written nothing.
// n < 0: the connection broke during the body.
func (s *Server) fastNar(c net.Conn, repo *repoState, rel string, req fastHead, headLen int, start time.Time) (n int, ok bool) {
	if req.head || req.cond || repo.readOnly() || !canSendBlocking {
		return 0, false
	}
	tc, isTCP := c.(*net.TCPConn)
	if !isTCP {
		return 0, false
	}
	select {
	case blockingSends <- struct{}{}:
		defer func() { <-blockingSends }()
	default:
		return 0, false // busy: net/http's sendfile
	}
	f, fi, local, err := s.openLocal(repo, rel)
	if !local || err != nil {
		return 0, false // not a folder bucket, or missing (404) or unreadable: net/http says so
	}
	defer f.Close()
	size := fi.Size()
	var hb [512]byte
	if _, err := c.Write(appendNarHeader(hb[:0], size, fi.ModTime())); err != nil {
		return -1, false
	}
	sent, err := sendFileBlocking(tc, f, size)
	s.metrics.observe(kindNar, req.method, http.StatusOK, sent, time.Since(start))
	if err != nil {
		return -1, false
	}
	return headLen, true
}

// appendNarHeader is the head of ServeContent's full answer for a NAR
// file (the handler sets Accept-Ranges, Cache-Control, Content-Type and
// X-Content-Type-Options).
func appendNarHeader(b []byte, size int64, mod time.Time) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nCache-Control: "...)
	b = append(b, hdrImmutable[0]...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, size, 10)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, hdrNar[0]...)
	if !mod.IsZero() && !mod.Equal(time.Unix(0, 0)) {
		b = append(b, "\r\nLast-Modified: "...)
		b = mod.UTC().AppendFormat(b, http.TimeFormat)
	}
	b = append(b, "\r\nX-Content-Type-Options: nosniff\r\nDate: "...)
	b = append(b, httpDate()...)
	return append(b, "\r\n\r\n"...)
}
