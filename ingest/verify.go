package ingest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nixrepo/nixrepo/internal/work"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Keys are the public keys of which at least one must have signed each
	// path. Empty skips the signature check.
	Keys     []nix.PublicKey
	Workers  int
	Progress func(Progress)
}

// VerifyReport summarises a Verify.
type VerifyReport struct {
	Repo     string    `json:"repo"`
	Checked  int       `json:"checked"`
	OK       int       `json:"ok"`
	Failed   int       `json:"failed"`
	Bytes    int64     `json:"bytes"`
	Duration Duration  `json:"duration"`
	Problems []Problem `json:"problems"`
}

// Verify re-checks every path of a repository: the narinfo parses and names
// the right store path, its NAR file is present with the claimed FileSize and
// FileHash, it decompresses to a well-formed NAR with the claimed NarSize and
// NarHash, a trusted key signed it, and every reference is in the repository.
func Verify(ctx context.Context, repo *store.Cache, opts *VerifyOptions) (*VerifyReport, error) {
	start := time.Now()
	if opts == nil {
		opts = &VerifyOptions{}
	}
	var hashes []string
	if err := repo.NarInfos(ctx, func(h string) error { hashes = append(hashes, h); return nil }); err != nil {
		return nil, fmt.Errorf("verify: listing %s: %w", repo.Name(), err)
	}
	// Read every narinfo once up front: the store path behind every hash
	// lets references be checked by full path (a reference with the right
	// hash but another name is missing), and the NAR checks reuse it.
	infos := make([]*nix.NarInfo, len(hashes))
	readErrs := make([]error, len(hashes))
	if err := work.Each(ctx, workers(opts.Workers)*4, len(hashes), func(i int) error {
		ni, _, err := repo.ReadNarInfo(ctx, hashes[i])
		var pe *nix.ParseError
		if err != nil && !errors.As(err, &pe) && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		infos[i], readErrs[i] = ni, err
		return nil
	}); err != nil {
		return nil, fmt.Errorf("verify %s: %w", repo.Name(), err)
	}
	have := make(map[string]nix.StorePath, len(hashes))
	for i, h := range hashes {
		if infos[i] != nil {
			have[h] = infos[i].StorePath
		}
	}
	rep := &VerifyReport{Repo: repo.Name(), Checked: len(hashes), Problems: []Problem{}}
	var mu sync.Mutex
	var done atomic.Int64
	var bytes atomic.Int64
	err := work.Each(ctx, workers(opts.Workers), len(hashes), func(i int) error {
		name, problems, err := verifyPath(ctx, repo, hashes[i], infos[i], readErrs[i], have, opts.Keys, &bytes)
		if err != nil {
			return err
		}
		mu.Lock()
		if len(problems) > 0 {
			rep.Problems = append(rep.Problems, Problem{StorePath: name, Reason: strings.Join(problems, "; ")})
		}
		mu.Unlock()
		if opts.Progress != nil {
			opts.Progress(Progress{Paths: int(done.Add(1)), TotalPaths: len(hashes), Bytes: bytes.Load()})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", repo.Name(), err)
	}
	sort.Slice(rep.Problems, func(i, j int) bool { return rep.Problems[i].StorePath < rep.Problems[j].StorePath })
	rep.Failed = len(rep.Problems)
	rep.OK = rep.Checked - rep.Failed
	rep.Bytes = bytes.Load()
	rep.Duration = Duration(time.Since(start))
	return rep, nil
}

func workers(n int) int { return max(n, 1) }

// verifyPath checks one path; ni and readErr are the result of reading its
// narinfo (a parse error or a narinfo deleted meanwhile).
func verifyPath(ctx context.Context, repo *store.Cache, hash string, ni *nix.NarInfo, readErr error, have map[string]nix.StorePath, keys []nix.PublicKey, bytes *atomic.Int64) (string, []string, error) {
	name := store.NarInfoFile(hash)
	if err := readErr; err != nil {
		var pe *nix.ParseError
		if errors.As(err, &pe) {
			return name, []string{fmt.Sprintf("malformed narinfo: %v", pe)}, nil
		}
		if errors.Is(err, store.ErrNotFound) {
			return name, nil, nil // deleted while verifying
		}
		return name, nil, err
	}
	name = ni.StorePath.Absolute()
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if ni.StorePath.HashPart() != hash {
		add("narinfo file %s.narinfo describes another store path", hash)
	}
	if ni.FileHash.IsZero() {
		add("no FileHash")
	}
	if len(keys) > 0 && !ni.Verify(keys) {
		add("not signed by a trusted key (signatures: %s)", strings.Join(ni.Sigs, " "))
	}
	for _, ref := range ni.References {
		if got, ok := have[ref.HashPart()]; !ok || got != ref {
			add("reference %s is missing", ref.Absolute())
		}
	}
	if err := store.CheckRel(ni.URL); err != nil {
		add("URL: %v", err)
		return name, problems, nil
	}
	r, err := repo.NewReader(ctx, ni.URL)
	if errors.Is(err, store.ErrNotFound) {
		add("NAR file %s is missing", ni.URL)
		return name, problems, nil
	}
	if err != nil {
		return name, nil, err
	}
	defer r.Close()
	size := r.Size()
	m, err := Measure(countingReader{r, bytes}, MeasureOptions{Compression: ni.EffectiveCompression(), SizeHint: size, NarSize: ni.NarSize})
	if err != nil {
		if ctx.Err() != nil {
			return name, nil, ctx.Err()
		}
		add("NAR file %s: %v", ni.URL, err)
		return name, problems, nil
	}
	if err := CheckClaims(ni, m); err != nil {
		add("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return name, problems, nil
}
