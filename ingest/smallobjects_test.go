package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// TestReadChannelRefusesOversizedState: a channel.json over
// store.MaxChannelStateSize is refused, not read whole.
func TestReadChannelRefusesOversizedState(t *testing.T) {
	st := memStore(t)
	repo := st.Repo("r")
	ctx := context.Background()
	if _, err := push(t, repo, channelTarball(t, "team-1.0", "one"), ingest.PushOptions{Snapshot: "1.0"}); err != nil {
		t.Fatal(err)
	}
	key := repo.Key(store.ChannelStateRel("team"))
	b, err := st.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// Still valid JSON: only the size can refuse it.
	padded := append(bytes.Repeat([]byte(" "), store.MaxChannelStateSize), b...)
	if err := st.Put(ctx, key, padded, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.ReadChannel(ctx, "team"); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if err := st.Put(ctx, key, b, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.ReadChannel(ctx, "team"); err != nil {
		t.Fatalf("the state itself: %v", err)
	}
}

// TestUpstreamNarInfoOverTheLimit: an upstream narinfo over
// nix.MaxNarInfoSize (here a valid, signed one padded with a key Nix
// ignores) is refused as too large, not cut at the limit and parsed.
func TestUpstreamNarInfoOverTheLimit(t *testing.T) {
	files := sample(t)
	ni := narinfoOf(t, files, dataHash)
	ni.Sigs = nil
	if err := ni.Sign(testKey); err != nil {
		t.Fatal(err)
	}
	body := append(ni.Bytes(), "X-Padding: "+strings.Repeat("a", nix.MaxNarInfoSize)+"\n"...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	defer srv.Close()
	up := ingest.NewUpstream(srv.URL, []nix.PublicKey{testKey.Public()})
	_, err := up.NarInfo(context.Background(), dataHash)
	if !errors.Is(err, store.ErrTooLarge) || !errors.Is(err, ingest.ErrMismatch) {
		t.Fatalf("got %v, want ErrTooLarge (as ErrMismatch)", err)
	}
	if !strings.Contains(err.Error(), dataHash+".narinfo") {
		t.Errorf("message %q does not name the narinfo", err)
	}
}
