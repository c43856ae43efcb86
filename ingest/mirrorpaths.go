package ingest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/internal/work"
)

// MirrorPathsOptions tune MirrorPaths.
type MirrorPathsOptions struct {
	// Workers downloads in parallel (default 8: downloads wait on the
	// network more than on the CPU).
	Workers int
	// Key, when set, adds the repository's signature to mirrored paths.
	Key      nix.SecretKey
	Progress func(Progress)
}

// MirrorPathsReport summarises MirrorPaths.
type MirrorPathsReport struct {
	Repo      string    `json:"repo"`
	Upstream  string    `json:"upstream"`
	Requested int       `json:"requested"`
	Closure   int       `json:"closure"` // paths in the closure of the requested ones
	Present   int       `json:"present"` // already in the repository
	Fetched   int       `json:"fetched"` // newly mirrored
	Failed    int       `json:"failed"`  // not mirrored; see Problems
	Bytes     int64     `json:"bytes"`   // NAR file bytes downloaded
	Duration  Duration  `json:"duration"`
	Problems  []Problem `json:"problems"` // per path
}

// MirrorPaths copies the full closures of roots from upstream into repo, so
// they stay available offline. Narinfos are fetched breadth-first (checking
// upstream signatures), NAR files in parallel, largest first (each verified
// while stored), then narinfos are written references first. Paths already
// present are skipped; an interrupted run resumes where it stopped (stored
// NAR files are not downloaded again).
func MirrorPaths(ctx context.Context, repo *store.Cache, up *Upstream, roots []nix.StorePath, o *MirrorPathsOptions) (*MirrorPathsReport, error) {
	start := time.Now()
	if o == nil {
		o = &MirrorPathsOptions{}
	}
	workers := o.Workers
	if workers <= 0 {
		workers = 8
	}
	rep := &MirrorPathsReport{Repo: repo.Name(), Upstream: up.URL, Requested: len(roots), Problems: []Problem{}}
	var mu sync.Mutex
	problem := func(path, format string, args ...any) {
		mu.Lock()
		rep.Problems = append(rep.Problems, Problem{StorePath: path, Reason: fmt.Sprintf(format, args...)})
		mu.Unlock()
	}

	// 1. Walk the closure through narinfos.
	infos := map[string]*nix.NarInfo{} // to fetch, by hash
	seen := map[string]bool{}
	level := []nix.StorePath{}
	for _, r := range roots {
		if !seen[r.HashPart()] {
			seen[r.HashPart()] = true
			level = append(level, r)
		}
	}
	for len(level) > 0 {
		results := make([]*nix.NarInfo, len(level))
		present := make([]bool, len(level))
		err := work.Each(ctx, workers*2, len(level), func(i int) error {
			p := level[i]
			ok, err := repo.HasNarInfo(ctx, p.HashPart())
			if err != nil {
				return err
			}
			if ok {
				present[i] = true
				return nil
			}
			ni, err := up.NarInfo(ctx, p.HashPart())
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				problem(p.Absolute(), "%v", err)
				return nil
			}
			if ni.StorePath != p {
				problem(p.Absolute(), "upstream narinfo describes %s", ni.StorePath.Absolute())
				return nil
			}
			results[i] = ni
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("mirror paths: %w", err)
		}
		var next []nix.StorePath
		for i, ni := range results {
			rep.Closure++
			if present[i] {
				rep.Present++
				continue
			}
			if ni == nil {
				continue
			}
			infos[ni.StorePath.HashPart()] = ni
			for _, ref := range ni.References {
				if !seen[ref.HashPart()] {
					seen[ref.HashPart()] = true
					next = append(next, ref)
				}
			}
		}
		level = next
	}

	// 2. NAR files, largest first.
	todo := make([]*nix.NarInfo, 0, len(infos))
	var total int64
	for _, ni := range infos {
		todo = append(todo, ni)
		total += int64(ni.FileSize)
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].FileSize > todo[j].FileSize })
	measured := make(map[string]Measured, len(todo))
	var done, doneBytes atomic.Int64
	var bytesRead atomic.Int64
	report := func() {
		if o.Progress != nil {
			o.Progress(Progress{Paths: int(done.Load()), TotalPaths: len(todo), Bytes: doneBytes.Load(), TotalBytes: total})
		}
	}
	report()
	err := work.Each(ctx, workers, len(todo), func(i int) error {
		ni := todo[i]
		defer func() { done.Add(1); doneBytes.Add(int64(ni.FileSize)); report() }()
		// Resume: a NAR file stored by an earlier run has its measurement.
		if m, ok := storedMeasurement(ctx, repo, ni); ok {
			mu.Lock()
			measured[ni.StorePath.HashPart()] = m
			mu.Unlock()
			return nil
		}
		m, err := PullNar(ctx, repo, up, ni, nil)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, ErrUpstream) || errors.Is(err, ErrMismatch) || errors.Is(err, store.ErrNotFound) {
				problem(ni.StorePath.Absolute(), "%v", err)
				return nil
			}
			return err
		}
		bytesRead.Add(int64(m.FileSize))
		mu.Lock()
		measured[ni.StorePath.HashPart()] = m
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mirror paths: %w", err)
	}

	// 3. Narinfos, references first. A path whose references failed is
	// not written (CommitPulled: ErrMissingRefs).
	pending := make([]*nix.NarInfo, 0, len(infos))
	for _, ni := range infos {
		pending = append(pending, ni)
	}
	for _, ni := range nix.ReferencesFirst(pending) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		m, ok := measured[ni.StorePath.HashPart()]
		if !ok {
			continue
		}
		if err := CommitPulled(ctx, repo, ni, m, o.Key); err != nil {
			problem(ni.StorePath.Absolute(), "%v", err)
			continue
		}
		rep.Fetched++
	}
	sort.Slice(rep.Problems, func(i, j int) bool { return rep.Problems[i].StorePath < rep.Problems[j].StorePath })
	rep.Failed = len(rep.Problems)
	rep.Bytes = bytesRead.Load()
	rep.Duration = Duration(time.Since(start))
	return rep, nil
}
