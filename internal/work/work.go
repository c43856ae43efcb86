// Package work runs bounded parallel loops for the stages (ingest and index
// both fan work out over store paths; stages do not import each other, so
// the loop lives here). It is errgroup with a limit, and one rule more: after
// the first error, or the context's end, no new call starts.
package work

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// Each runs fn(0..n-1) on up to workers goroutines and returns the first
// error; after an error or the context's cancellation no new call starts.
func Each(ctx context.Context, workers, n int, fn func(i int) error) error {
	if n <= 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, workers))
	for i := 0; i < n; i++ {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			return fn(i)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
