package server

import (
	"context"
	"strings"
	"testing"
	"time"
)

// queueUp starts an acquire for each "token/repo" in order, each one
// waiting before the next starts, and returns the channel on which each
// reports its name once granted.
func queueUp(t *testing.T, a *admission, uploads []string) <-chan string {
	t.Helper()
	granted := make(chan string, len(uploads))
	for i, u := range uploads {
		token, repo, _ := strings.Cut(u, "/")
		go func() {
			if err := a.acquire(context.Background(), token, repo, time.Minute, nil); err != nil {
				t.Errorf("%s: %v", u, err)
				return
			}
			granted <- u
		}()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, w := a.counts(); w == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not wait", u)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return granted
}

// TestAdmissionServesTokensInTurn: freed slots go to the tokens with
// waiting uploads in turn, not to the oldest upload: a token that queued
// many uploads first does not make the others wait for all of them. An
// upload whose repository is at its cap is passed over for the same
// token's next one.
func TestAdmissionServesTokensInTurn(t *testing.T) {
	tests := []struct {
		name                     string
		total, perToken, perRepo int
		holding                  []string // granted before the queue forms
		queued                   []string // in arrival order
		// releases: which upload ends before each grant (default: the
		// one granted last)
		releases []string
		want     []string // grant order
	}{
		{
			name: "round robin", total: 1, perToken: 1, perRepo: 1,
			holding: []string{"a/r"},
			queued:  []string{"a/r", "a/r", "a/r", "b/r", "c/r", "c/r"},
			want:    []string{"a/r", "b/r", "c/r", "a/r", "c/r", "a/r"},
		},
		{
			// x is at its cap while y holds the slot that frees:
			// a's upload to y goes first, though a's x upload is older.
			name: "repository at its cap", total: 2, perToken: 2, perRepo: 1,
			holding:  []string{"b/x", "b/y"},
			queued:   []string{"a/x", "a/y"},
			releases: []string{"b/y", "b/x"},
			want:     []string{"a/y", "a/x"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAdmission(tc.total, tc.perToken, tc.perRepo, 100)
			for _, h := range tc.holding {
				token, repo, _ := strings.Cut(h, "/")
				if err := a.acquire(context.Background(), token, repo, time.Second, nil); err != nil {
					t.Fatal(err)
				}
			}
			granted := queueUp(t, a, tc.queued)
			last := tc.holding[len(tc.holding)-1]
			var got []string
			for i := range tc.want {
				h := last
				if tc.releases != nil {
					h = tc.releases[i]
				}
				token, repo, _ := strings.Cut(h, "/")
				a.release(token, repo)
				select {
				case g := <-granted:
					got = append(got, g)
					last = g
				case <-time.After(5 * time.Second):
					t.Fatalf("nothing granted after releasing %s (granted so far %v)", h, got)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("grant order %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAdmissionCapsPerTokenAndRepository: a token never holds more than
// its share, uploads to one repository never more than theirs (even with
// slots free), a token's uploads beyond its queue bound are refused at
// once, and a wait that times out or is cancelled gives up its place.
func TestAdmissionCapsPerTokenAndRepository(t *testing.T) {
	a := newAdmission(4, 3, 2, 1)
	ctx := context.Background()
	take := func(u string) {
		t.Helper()
		token, repo, _ := strings.Cut(u, "/")
		if err := a.acquire(ctx, token, repo, time.Second, nil); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
	wait := func(u string, c context.Context) <-chan error {
		t.Helper()
		_, before := a.counts()
		token, repo, _ := strings.Cut(u, "/")
		done := make(chan error, 1)
		go func() { done <- a.acquire(c, token, repo, time.Minute, nil) }()
		for _, w := a.counts(); w != before+1; _, w = a.counts() {
			time.Sleep(time.Millisecond)
		}
		return done
	}
	take("a/r")
	take("a/r")
	br := wait("b/r", ctx) // r is at its cap, though two slots are free
	take("b/s")            // b's upload to s does not wait
	take("a/s")            // every slot in use; a at its cap
	if err := a.acquire(ctx, "a", "t", 50*time.Millisecond, nil); err != errQueueTimeout {
		t.Errorf("a beyond its cap: %v, want errQueueTimeout", err)
	}
	ct := wait("c/t", ctx)
	if err := a.acquire(ctx, "c", "u", time.Minute, nil); err != errQueueFull {
		t.Errorf("c beyond its queue bound: %v, want errQueueFull", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	dt := wait("d/t", cctx)
	cancel()
	if err := <-dt; err != context.Canceled {
		t.Errorf("cancelled wait: %v, want context.Canceled", err)
	}
	if active, waiting := a.counts(); active != 4 || waiting != 2 {
		t.Fatalf("%d active, %d waiting; want 4, 2", active, waiting)
	}
	a.release("a", "r") // b/r's turn (it queued first)
	if err := <-br; err != nil {
		t.Errorf("b/r: %v", err)
	}
	a.release("a", "s")
	if err := <-ct; err != nil {
		t.Errorf("c/t: %v", err)
	}
	if active, waiting := a.counts(); active != 4 || waiting != 0 {
		t.Errorf("%d active, %d waiting; want 4, 0", active, waiting)
	}
}
