package work_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/nixrepo/nixrepo/internal/work"
)

func TestEachRunsEveryIndexOnce(t *testing.T) {
	seen := make([]atomic.Int32, 1000)
	if err := work.Each(context.Background(), 4, len(seen), func(i int) error { seen[i].Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range seen {
		if seen[i].Load() != 1 {
			t.Fatalf("index %d ran %d times", i, seen[i].Load())
		}
	}
}

func TestEachStopsAtFirstError(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int32
	err := work.Each(context.Background(), 1, 100, func(i int) error {
		calls.Add(1)
		if i == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls.Load() != 4 {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
}

func TestEachHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := work.Each(ctx, 2, 10, func(int) error { t.Error("ran after cancel"); return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if err := work.Each(ctx, 2, 0, nil); err != nil {
		t.Fatal(err)
	}
}
