package ingest_test

import (
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
