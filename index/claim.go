package index

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nixrepo/nixrepo/internal/store"
)

// ---------------------------------------------------------------------------
// One catalog writer at a time, across processes
//
// Several processes (servers, runs, index and publish commands) update the
// catalog of one bucket. Only the holder of the catalog's claim writes its
// objects: a build takes the claim by changing the manifest, by
// compare-and-swap, from the complete manifest it started from (the bytes
// it read) to a pending one naming the claim, renews the claim while it
// works (a heartbeat), and gives it up with the compare-and-swap that
// writes the complete manifest of the next generation, which succeeds only
// while the claim is still its own. A build that finds the manifest
// changed since it read it starts again from the new one; one that finds
// another's live claim waits for it to end. A claim not renewed for
// claimLease is a crashed build's: the next build takes it over and builds
// the catalog in full, as it does after any interrupted build.
// docs/concurrency.md ("Derived objects") has the argument.

// claim marks the pending manifest of the build that holds it.
type claim struct {
	ID string `json:"id"`
	// Beat is when the holder last renewed the claim (its clock).
	Beat time.Time `json:"beat"`
}

// The claim's timing; tests shorten them.
var (
	// claimLease: a claim whose holder has not renewed it for this long
	// (by the waiter's own clock, or by the Beat it wrote) is taken over.
	claimLease = time.Minute
	// claimBeat is how often the holder renews its claim.
	claimBeat = 10 * time.Second
	// claimPoll is how often a waiting build reads the manifest again.
	claimPoll = time.Second
)

// maxAttempts bounds how often one Update or Build starts over because
// another build changed the catalog first.
const maxAttempts = 8

// errMoved: the manifest changed since the build read it; the build starts
// again from the new one.
var errMoved = errors.New("the catalog changed during the build")

// errClaimLost: another build took over the claim (this one was presumed
// dead); the build starts again.
var errClaimLost = errors.New("the catalog claim was taken over by another build")

// readManifestBytes reads the manifest: its bytes (nil when absent) and,
// when they parse as a manifest of this format, the manifest. err is
// store.ErrNotFound for an absent manifest and a parse or format error for
// one that does not serve (readManifest's).
func readManifestBytes(ctx context.Context, st *store.Store) ([]byte, *manifest, error) {
	b, err := st.Get(ctx, store.CatalogManifest)
	if err != nil {
		return nil, nil, err
	}
	m, err := parseManifest(b)
	return b, m, err
}

func marshalManifest(m *manifest) ([]byte, error) { return json.Marshal(m) }

// waiter follows another build's claim until it ends or goes stale.
type waiter struct {
	seen  claim
	since time.Time // by this process's clock, when seen was first read
}

// stale tells whether the pending manifest m may be taken over: it names
// no claim (an interrupted build of any version), or its claim was not
// renewed for claimLease, by its own Beat or by what this waiter saw.
func (w *waiter) stale(m *manifest) bool {
	c := m.Claim
	if c == nil || c.ID == "" {
		return true
	}
	now := time.Now()
	if *c != w.seen {
		w.seen, w.since = *c, now
	}
	return now.Sub(w.since) >= claimLease || now.Sub(c.Beat) >= claimLease
}

// wait polls the manifest until it is no longer base (the claim ended or
// moved) or the claim in it went stale.
func (w *waiter) wait(ctx context.Context, st *store.Store, base []byte, log *slog.Logger) error {
	log.Debug("waiting for another build of the catalog", "claim", w.seen.ID)
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("index: waiting for another build of the catalog: %w", ctx.Err())
		case <-time.After(claimPoll):
		}
		b, m, err := readManifestBytes(ctx, st)
		if err != nil || !bytes.Equal(b, base) || !m.Pending || w.stale(m) {
			return nil
		}
	}
}

// holder is a build holding the catalog's claim.
type holder struct {
	st  *store.Store
	id  string
	log *slog.Logger
	// ctx is the build's context, canceled with errClaimLost once the
	// claim is found lost.
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   chan struct{}
	done   chan struct{}
	// wrote: the build may have written catalog objects.
	wrote     bool
	committed bool
	released  error // release's result, once it ran
	isRelease bool
	base      []byte
}

// acquire replaces the manifest base (the bytes the build read; nil when
// there was none) with pending, marked pending and naming a new claim,
// and starts renewing the claim. errMoved: the manifest is no longer
// base.
func acquire(ctx context.Context, st *store.Store, base []byte, pending manifest, log *slog.Logger) (*holder, error) {
	var r [8]byte
	rand.Read(r[:])
	h := &holder{st: st, id: hex.EncodeToString(r[:]), log: log, base: base, stop: make(chan struct{}), done: make(chan struct{})}
	pending.Pending = true
	err := st.Update(ctx, store.CatalogManifest, manifestOpts, func(old []byte) ([]byte, error) {
		if !bytes.Equal(old, base) {
			return nil, errMoved
		}
		pending.Claim = &claim{ID: h.id, Beat: time.Now().UTC()}
		return marshalManifest(&pending)
	})
	if err != nil {
		if errors.Is(err, errMoved) {
			return nil, err
		}
		return nil, fmt.Errorf("index: %w", err)
	}
	h.ctx, h.cancel = context.WithCancelCause(ctx)
	go h.heartbeat()
	return h, nil
}

var manifestOpts = &store.WriteOptions{ContentType: "application/json"}

// ours changes the manifest with fn while the claim is this holder's;
// errClaimLost when it is not.
func (h *holder) ours(ctx context.Context, fn func(m *manifest) ([]byte, error)) error {
	return h.st.Update(ctx, store.CatalogManifest, manifestOpts, func(old []byte) ([]byte, error) {
		m, err := parseManifest(old)
		if err != nil || !m.Pending || m.Claim == nil || m.Claim.ID != h.id {
			return nil, errClaimLost
		}
		return fn(m)
	})
}

// heartbeat renews the claim every claimBeat. Once the claim is found
// lost, or could not be renewed for half the lease (others may take it
// over soon), the build's context is canceled.
func (h *holder) heartbeat() {
	defer close(h.done)
	t := time.NewTicker(claimBeat)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-h.stop:
			return
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		err := h.ours(h.ctx, func(m *manifest) ([]byte, error) {
			m.Claim.Beat = time.Now().UTC()
			return marshalManifest(m)
		})
		switch {
		case err == nil:
			last = time.Now()
		case errors.Is(err, errClaimLost):
			h.cancel(errClaimLost)
			return
		default:
			h.log.Warn("could not renew the catalog claim", "err", err)
			if time.Since(last) > claimLease/2 {
				h.cancel(errClaimLost)
				return
			}
		}
	}
}

func (h *holder) stopBeating() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}

// err is the build's error: errClaimLost when the claim was lost.
func (h *holder) err(err error) error {
	if c := context.Cause(h.ctx); errors.Is(c, errClaimLost) {
		return errClaimLost
	}
	return err
}

// commit writes the complete manifest m if the claim is still this
// holder's; otherwise it gives the build up (release) and returns
// errClaimLost.
func (h *holder) commit(m *manifest) error {
	if err := h.ctx.Err(); err != nil {
		return h.release(h.err(err))
	}
	h.stopBeating()
	m.Pending, m.Claim = false, nil
	b, err := marshalManifest(m)
	if err != nil {
		return h.release(err)
	}
	err = h.ours(h.ctx, func(*manifest) ([]byte, error) { return b, nil })
	if err != nil {
		return h.release(err)
	}
	h.committed = true
	h.cancel(nil)
	return nil
}

// release gives up a build that failed with err, and returns err (or
// errClaimLost). A holder that wrote nothing puts the manifest it started
// from back; one that wrote leaves the catalog pending without a claim, so
// the next build rebuilds it in full; and one that lost its claim after
// writing marks whatever manifest is there pending the same way: its
// writes may have landed after the new holder's.
func (h *holder) release(err error) error {
	if h.committed { // (a failure after the commit: the local index)
		return err
	}
	if h.isRelease {
		return h.released
	}
	h.isRelease = true
	h.released = h.doRelease(err)
	return h.released
}

func (h *holder) doRelease(err error) error {
	h.stopBeating()
	defer h.cancel(nil)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), 30*time.Second)
	defer cancel()
	lost := false
	uerr := h.st.Update(ctx, store.CatalogManifest, manifestOpts, func(old []byte) ([]byte, error) {
		m, perr := parseManifest(old)
		mine := perr == nil && m.Pending && m.Claim != nil && m.Claim.ID == h.id
		lost = !mine
		switch {
		case mine && !h.wrote && h.base != nil:
			return h.base, nil
		case mine:
			m.Claim = nil
			return marshalManifest(m)
		case !h.wrote || perr != nil:
			return nil, store.ErrUnchanged
		default:
			m.Pending, m.Claim = true, nil
			return marshalManifest(m)
		}
	})
	if uerr != nil {
		h.log.Warn("could not release the catalog claim", "err", uerr)
	}
	if lost || errors.Is(err, errClaimLost) {
		return errClaimLost
	}
	return err
}
