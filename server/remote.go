package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// remoteState is the pull-through machinery of a remote repository.
type remoteState struct {
	up          *ingest.Upstream
	negativeTTL time.Duration

	flights singleflight.Group // one upstream fetch per object at a time

	mu       sync.Mutex
	negative map[string]time.Time    // narinfo hash → until when it is known missing
	pending  map[string]*pendingPath // canonical NAR name → path whose narinfo was served
	byHash   map[string]*pendingPath
	waiting  map[string]*pendingPath // NAR stored, narinfo waits for references
}

// pendingPath is an upstream path whose narinfo was served but which is
// not stored yet.
type pendingPath struct {
	ni      *nix.NarInfo // as upstream wrote it
	served  []byte       // the narinfo bytes served to clients
	narRel  string
	m       ingest.Measured
	created time.Time
}

const maxPending = 1 << 17

func newRemoteState(up *ingest.Upstream, ttl time.Duration) *remoteState {
	if ttl <= 0 {
		ttl = time.Minute
	}
	return &remoteState{up: up, negativeTTL: ttl, negative: map[string]time.Time{},
		pending: map[string]*pendingPath{}, byHash: map[string]*pendingPath{}, waiting: map[string]*pendingPath{}}
}

// remoteNarInfo answers a narinfo miss of a remote repository from
// upstream. The narinfo is served (URL made canonical, the repository's
// signature added when it has a key) but stored only once its NAR file is.
// Any upstream failure is "not found", so Nix falls back.
func (s *Server) remoteNarInfo(ctx context.Context, repo *repoState, hash string) ([]byte, bool) {
	rs := repo.remote
	rs.mu.Lock()
	if until, ok := rs.negative[hash]; ok && time.Now().Before(until) {
		rs.mu.Unlock()
		return nil, false
	}
	if p, ok := rs.byHash[hash]; ok {
		rs.mu.Unlock()
		return p.served, true
	}
	rs.mu.Unlock()
	v, err, _ := rs.flights.Do("ni:"+hash, func() (any, error) {
		ni, err := rs.up.NarInfo(context.WithoutCancel(ctx), hash)
		if err != nil {
			return nil, err
		}
		served := *ni
		served.Compression = ni.EffectiveCompression()
		served.URL = store.NarFile(ni.FileHash, served.Compression)
		served.Sigs = append([]string(nil), ni.Sigs...)
		if repo.Key.Name != "" {
			if err := served.Sign(repo.Key); err != nil {
				return nil, err
			}
		}
		p := &pendingPath{ni: ni, served: served.Bytes(), narRel: served.URL, created: time.Now()}
		rs.mu.Lock()
		if len(rs.pending) >= maxPending {
			rs.expirePending()
		}
		rs.pending[p.narRel] = p
		rs.byHash[hash] = p
		rs.mu.Unlock()
		return p, nil
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			rs.mu.Lock()
			rs.negative[hash] = time.Now().Add(rs.negativeTTL)
			rs.mu.Unlock()
		} else {
			s.log.Warn("upstream narinfo refused", "repo", repo.Name, "hash", hash, "err", err)
		}
		return nil, false
	}
	return v.(*pendingPath).served, true
}

func (rs *remoteState) expirePending() {
	cutoff := time.Now().Add(-time.Hour)
	for k, p := range rs.pending {
		if p.created.Before(cutoff) {
			delete(rs.pending, k)
			delete(rs.byHash, p.ni.StorePath.HashPart())
		}
	}
}

// remoteNar serves a NAR file of a remote repository that is not stored
// yet: one upstream fetch per file however many clients ask, streamed to the
// first client while it is verified and stored; the others get the stored
// file. It reports whether it answered.
func (s *Server) remoteNar(w http.ResponseWriter, r *http.Request, repo *repoState, rel string) bool {
	rs := repo.remote
	rs.mu.Lock()
	p, ok := rs.pending[rel]
	rs.mu.Unlock()
	if !ok {
		return false
	}
	leader := false
	_, err, _ := rs.flights.Do("nar:"+rel, func() (any, error) {
		leader = true
		tee := &clientWriter{w: w, r: r, size: p.ni.FileSize}
		// Detached from the client: a client that goes away must not
		// waste the download for the others.
		m, err := ingest.PullNar(context.WithoutCancel(r.Context()), repo.cache, rs.up, p.ni, tee)
		if err != nil {
			return nil, err
		}
		p.m = m
		s.settle(r.Context(), repo, p)
		return nil, nil
	})
	if leader {
		if err != nil {
			s.log.Warn("upstream NAR refused", "repo", repo.Name, "path", p.ni.StorePath.Absolute(), "err", err)
			// Forget the narinfo that led here: it may be the lie.
			rs.mu.Lock()
			if rs.pending[rel] == p {
				delete(rs.pending, rel)
				delete(rs.byHash, p.ni.StorePath.HashPart())
			}
			rs.mu.Unlock()
			if w.(*statusWriter).status == 0 {
				httpError(w, http.StatusNotFound, "not found")
				return true
			}
			// Bytes already went out: break the connection so the
			// client sees a failed transfer, never a bad NAR.
			panic(http.ErrAbortHandler)
		}
		return true
	}
	if err != nil {
		httpError(w, http.StatusNotFound, "not found")
		return true
	}
	return false // stored now: the caller serves it from the bucket
}

// settle writes the narinfo of p, and of every waiting path whose
// references are now complete.
func (s *Server) settle(ctx context.Context, repo *repoState, p *pendingPath) {
	rs := repo.remote
	ctx = context.WithoutCancel(ctx)
	queue := []*pendingPath{p}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		err := ingest.CommitPulled(ctx, repo.cache, q.ni, q.m, repo.Key)
		rs.mu.Lock()
		switch {
		case err == nil:
			delete(rs.waiting, q.ni.StorePath.HashPart())
			delete(rs.pending, q.narRel)
			delete(rs.byHash, q.ni.StorePath.HashPart())
			for _, other := range rs.waiting {
				queue = append(queue, other)
			}
		case errors.Is(err, ingest.ErrMissingRefs):
			rs.waiting[q.ni.StorePath.HashPart()] = q
			// Keep the repository closed under references: fetch what
			// the path needs from upstream too (a client may have taken
			// those from another substituter or a virtual's other member).
			for _, ref := range q.ni.References {
				h := ref.HashPart()
				if _, pending := rs.byHash[h]; pending || h == q.ni.StorePath.HashPart() {
					continue
				}
				s.background(func(ctx context.Context) { s.completeRef(ctx, repo, h) })
			}
		default:
			s.log.Error("storing a mirrored narinfo", "repo", repo.Name, "path", q.ni.StorePath.Absolute(), "err", err)
		}
		rs.mu.Unlock()
		if err == nil {
			// Dedupe: each waiting path is queued once per success.
			seen := map[*pendingPath]bool{}
			var uniq []*pendingPath
			for _, x := range queue {
				if !seen[x] {
					seen[x] = true
					uniq = append(uniq, x)
				}
			}
			queue = uniq
		}
	}
}

// completeRef pulls one reference of a waiting path from upstream (narinfo
// and NAR) unless the repository has it, then settles.
func (s *Server) completeRef(ctx context.Context, repo *repoState, hash string) {
	if ok, err := repo.cache.HasNarInfo(ctx, hash); err != nil || ok {
		return
	}
	if _, ok := s.remoteNarInfo(ctx, repo, hash); !ok {
		return
	}
	rs := repo.remote
	rs.mu.Lock()
	p := rs.byHash[hash]
	rs.mu.Unlock()
	if p == nil {
		return
	}
	_, err, _ := rs.flights.Do("nar:"+p.narRel, func() (any, error) {
		m, err := ingest.PullNar(ctx, repo.cache, rs.up, p.ni, nil)
		if err != nil {
			return nil, err
		}
		p.m = m
		s.settle(ctx, repo, p)
		return nil, nil
	})
	if err != nil {
		s.log.Warn("completing a mirrored closure", "repo", repo.Name, "path", p.ni.StorePath.Absolute(), "err", err)
	}
}

// background runs fn detached from any request, bounded, and tracked by
// Idle.
func (s *Server) background(fn func(ctx context.Context)) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.bgSem <- struct{}{}
		defer func() { <-s.bgSem }()
		fn(context.Background())
	}()
}

// Idle waits until background work (completing mirrored closures) is done.
func (s *Server) Idle() { s.bg.Wait() }

// clientWriter streams to the client, best effort: once the client is gone
// the download goes on (for the store) without it.
type clientWriter struct {
	w       http.ResponseWriter
	r       *http.Request
	size    uint64
	started bool
	failed  bool
}

func (c *clientWriter) Write(p []byte) (int, error) {
	if c.failed {
		return len(p), nil
	}
	if !c.started {
		c.started = true
		h := c.w.Header()
		h["Content-Type"] = hdrNar
		if c.size > 0 {
			h["Content-Length"] = []string{strconv.FormatUint(c.size, 10)}
		}
		c.w.WriteHeader(http.StatusOK)
		if c.r.Method == http.MethodHead {
			c.failed = true
			return len(p), nil
		}
	}
	if _, err := c.w.Write(p); err != nil {
		c.failed = true
	}
	return len(p), nil
}

var _ io.Writer = (*clientWriter)(nil)
