package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// newClient is an HTTP client with at most conns connections that follows
// no redirect and never asks for compressed responses.
func newClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxConnsPerHost:     conns,
			MaxIdleConnsPerHost: conns,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// req is one request.
type req struct {
	method, url string
	token       string // Basic password; "" = anonymous
	host        string // Host header, when not the URL's
	header      map[string]string
	body        []byte
	chunked     bool // send the body without Content-Length
}

// answer is what came back: the status (0 when the request failed), the
// first 64 KiB of the body, the headers, or the error.
type answer struct {
	status int
	body   []byte
	header http.Header
	err    error
}

func do(ctx context.Context, c *http.Client, r req) answer {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
		if r.chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
	}
	hr, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return answer{err: err}
	}
	if r.token != "" {
		hr.SetBasicAuth("bench", r.token)
	}
	if r.host != "" {
		hr.Host = r.host
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := c.Do(hr)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	io.Copy(io.Discard, resp.Body)
	return answer{status: resp.StatusCode, body: b, header: resp.Header, err: err}
}

// tally counts the answers one attack (or legitimate stream) got, by
// status, with the first reason given for each.
type tally struct {
	mu      sync.Mutex
	counts  map[string]int
	reasons map[string]string
	fails   []string
	nfails  int
}

func newTally() *tally { return &tally{counts: map[string]int{}, reasons: map[string]string{}} }

func (t *tally) add(key, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts[key]++
	if _, ok := t.reasons[key]; !ok {
		t.reasons[key] = oneLine(reason, 200)
	}
}

// fail records a broken rule (more than 20 are only counted).
func (t *tally) fail(msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nfails++
	if len(t.fails) < 20 {
		t.fails = append(t.fails, oneLine(msg, 300))
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// admission names a 400 that is a refusal by the upload admission (no
// slot, queue full, too slow, stalled), documented for any upload; "" for
// another answer.
func admission(body []byte) string {
	for _, k := range []struct{ text, name string }{
		{"no upload slot", "no-slot"}, {"upload queue full", "queue-full"},
		{"upload too slow", "too-slow"}, {"upload stalled", "stalled"},
	} {
		if bytes.Contains(body, []byte(k.text)) {
			return k.name
		}
	}
	return ""
}

// errKind names a transport error briefly.
func errKind(ctx context.Context, err error) string {
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		return "cancelled"
	case errors.As(err, &ne) && ne.Timeout():
		return "error: timeout"
	case strings.Contains(err.Error(), "connection reset"):
		return "error: connection reset"
	case strings.Contains(err.Error(), "broken pipe"):
		return "error: broken pipe"
	case errors.Is(err, io.EOF), strings.Contains(err.Error(), "EOF"):
		return "error: EOF"
	}
	return "error: other"
}
