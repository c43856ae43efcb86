package search

import (
	"context"

	"github.com/blevesearch/bleve/v2"
	bsearch "github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/nixrepo/nixrepo/index"
)

// Collecting and ranking the hits of a tier.

// lengthBands split name lengths for shortestHits.
var lengthBands = [][2]int{{0, 8}, {9, 12}, {13, 16}, {17, 22}, {23, 30}, {31, 999}}

// shortestHits returns the IDs of about k documents matching q with the
// shortest names: all matches when there are at most k per shard, else
// the matches of the shortest length bands until k are found (within the
// last band, the first in index order).
func shortestHits(shards []bleve.Index, q query.Query, k int) ([]string, error) {
	ids, complete, err := firstHits(shards, q, k)
	if err != nil || complete {
		return ids, err
	}
	ids = ids[:0]
	for _, b := range lengthBands {
		lo, hi := index.NameLength(b[0]), index.NameLength(b[1])
		incl := true
		band := query.NewTermRangeInclusiveQuery(lo, hi, &incl, &incl)
		band.SetField(index.FieldNameLength)
		more, _, err := firstHits(shards, query.NewConjunctionQuery([]query.Query{q, band}), k-len(ids))
		if err != nil {
			return nil, err
		}
		ids = append(ids, more...)
		if len(ids) >= k {
			break
		}
	}
	return ids, nil
}

// firstHits returns the IDs of the first k documents of each shard, in
// index order, that match q, without scoring: the search stops there.
// complete reports that no shard had more.
func firstHits(shards []bleve.Index, q query.Query, k int) (ids []string, complete bool, err error) {
	complete = true
	for _, sh := range shards {
		adv, err := sh.Advanced()
		if err != nil {
			return nil, false, err
		}
		r, err := adv.Reader()
		if err != nil {
			return nil, false, err
		}
		err = func() error {
			defer r.Close()
			sr, err := q.Searcher(context.Background(), r, sh.Mapping(), bsearch.SearcherOptions{Score: "none"})
			if err != nil {
				return err
			}
			defer sr.Close()
			sctx := &bsearch.SearchContext{DocumentMatchPool: bsearch.NewDocumentMatchPool(sr.DocumentMatchPoolSize(), 0), IndexReader: r}
			for n := 0; ; n++ {
				dm, err := sr.Next(sctx)
				if err != nil {
					return err
				}
				if dm == nil {
					break
				}
				if n == k {
					complete = false
					break
				}
				id, err := r.ExternalID(dm.IndexInternalID)
				if err != nil {
					return err
				}
				ids = append(ids, id)
				sctx.DocumentMatchPool.Put(dm)
			}
			return nil
		}()
		if err != nil {
			return nil, false, err
		}
	}
	return ids, complete, nil
}

// rankWord: names with a word equal to a query word before names where
// query words only start a word.
func (s *searcher) rankWord(name string) int {
	nw := words(name)
	rank := 0
	for _, w := range s.words {
		found := false
		for _, x := range nw {
			if x == w {
				found = true
				break
			}
		}
		if !found {
			rank++
		}
	}
	return rank
}

// rankFuzzy is the smallest edit distance between the query (or a query
// word) and the name (or a word of it).
func (s *searcher) rankFuzzy(name string) int {
	best := levenshtein(s.lq, name)
	nw := words(name)
	for _, w := range s.words {
		for _, x := range nw {
			best = min(best, levenshtein(w, x))
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			c := 1
			if ra[i-1] == rb[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
