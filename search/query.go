package search

import (
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/nixrepo/nixrepo/index"
)

// The word and fuzzy tiers: queries over the words of names.

// repoFilter wraps q so only documents in the filter's repositories match.
func (s *searcher) repoFilter(q query.Query) query.Query {
	if s.o.Repos == nil {
		return q
	}
	rs := make([]query.Query, len(s.o.Repos))
	for i, r := range s.o.Repos {
		tq := query.NewTermQuery(r)
		tq.SetField(index.FieldRepos)
		rs[i] = tq
	}
	return query.NewConjunctionQuery([]query.Query{q, query.NewDisjunctionQuery(rs)})
}

// wordQuery: every query word is a word of the name, or (from two
// characters) starts one.
func (s *searcher) wordQuery() (query.Query, error) {
	var must []query.Query
	for _, w := range s.words {
		q, _, err := s.wordMatch(w)
		if err != nil {
			return nil, err
		}
		must = append(must, q)
	}
	return conjunction(must), nil
}

// wordMatch matches names with w as a word or, from two characters, with
// a word starting with w; known reports whether the index has such words.
func (s *searcher) wordMatch(w string) (q query.Query, known bool, err error) {
	terms := []string{w}
	if utf8.RuneCountInString(w) >= 2 {
		longer, exists, err := s.wordTerms(w)
		if err != nil {
			return nil, false, err
		}
		terms = append(terms, longer...)
		known = exists || len(longer) > 0
	}
	return termsQuery(index.FieldWords, terms), known, nil
}

// conjunction is the query matching all of must.
func conjunction(must []query.Query) query.Query {
	if len(must) == 1 {
		return must[0]
	}
	return query.NewConjunctionQuery(must)
}

// wordTerms returns the shortest indexed words that start with w, other
// than w (at most maxWordTerms, from the first maxScan of each shard's
// dictionary), and whether w itself is an indexed word. A bleve prefix
// query would OR every such word, thousands for "lib". Both word tiers ask
// for the same words: the answer is kept for the search.
func (s *searcher) wordTerms(w string) (longer []string, exists bool, err error) {
	if c, ok := s.terms[w]; ok {
		return c.longer, c.exists, nil
	}
	set := map[string]bool{}
	for _, sh := range s.idx.Shards() {
		if err := scanDict(sh, index.FieldWords, w, "", set); err != nil {
			return nil, false, err
		}
	}
	exists = set[w]
	delete(set, w)
	terms := shortestFirst(set)
	longer = terms[:min(len(terms), maxWordTerms)]
	if s.terms == nil {
		s.terms = map[string]wordTermsResult{}
	}
	s.terms[w] = wordTermsResult{longer, exists}
	return longer, exists, nil
}

func termsQuery(field string, terms []string) query.Query {
	qs := make([]query.Query, len(terms))
	for i, t := range terms {
		tq := query.NewTermQuery(t)
		tq.SetField(field)
		qs[i] = tq
	}
	if len(qs) == 1 {
		return qs[0]
	}
	return query.NewDisjunctionQuery(qs)
}

func fuzziness(w string) int {
	switch n := utf8.RuneCountInString(w); {
	case n < minFuzzyWord, n > maxFuzzyWord:
		return 0
	case n < 8:
		return 1
	default:
		return 2
	}
}

// fuzzyQuery: every query word is within its fuzziness of (or a prefix
// of) a word of the name. A query word that is an indexed word, or starts
// one, is taken as typed: a typo is one word of the query, and the
// automaton of each fuzzy word (and the terms it matches) is the cost of
// this tier. (A one-word name is one word; the whole-name automaton over
// every name costs more and finds nothing more.)
//
// maxEdits caps each word's fuzziness; more reports whether some word
// would allow more edits than that. A query with more than maxFuzzyWords
// unknown words has no fuzzy query (nil): it is not a typo, and each
// fuzzy word is an automaton over the dictionary.
func (s *searcher) fuzzyQuery(maxEdits int) (q query.Query, more bool, err error) {
	var must []query.Query
	fuzzy := 0
	for _, w := range s.words {
		wq, known, err := s.wordMatch(w)
		if err != nil {
			return nil, false, err
		}
		if f := fuzziness(w); f > 0 && !known {
			if fuzzy++; fuzzy > maxFuzzyWords {
				return nil, false, nil
			}
			more = more || f > maxEdits
			fq := query.NewFuzzyQuery(w)
			fq.SetField(index.FieldWords)
			fq.SetFuzziness(min(f, maxEdits))
			wq = query.NewDisjunctionQuery([]query.Query{wq, fq})
		}
		must = append(must, wq)
	}
	if fuzzy == 0 {
		return nil, false, nil
	}
	return conjunction(must), more, nil
}
