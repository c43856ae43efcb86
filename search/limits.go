package search

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// What a query may cost. A query is read from anyone who can reach the
// search API, so its size is bounded before anything is looked up, and the
// fuzzy tier, whose automata grow with the words' length and number, is
// bounded further.

// Defaults of Limits.
const (
	DefaultMaxQueryLength = 256
	DefaultMaxWords       = 16
)

// Bounds of the fuzzy tier (not configurable: they bound work, not what a
// reader may ask for). A word outside them is taken as typed.
const (
	// minFuzzyWord is the shortest word matched within an edit (shorter
	// words match too much).
	minFuzzyWord = 3
	// maxFuzzyWord is the longest word matched within edits; no package
	// name has a word that long that a typo would hide.
	maxFuzzyWord = 32
	// maxFuzzyName is the longest query matched as a whole name within one
	// edit (the automaton grows with the query).
	maxFuzzyName = 64
	// maxFuzzyWords is the most unknown words a query may have for the
	// fuzzy word tier to run: each is an automaton over the dictionary,
	// and a name matching more misspelt words than that is not a typo.
	maxFuzzyWords = 4
)

// Limits bound a query. Zero fields take the defaults.
type Limits struct {
	// MaxQueryLength is the longest query in characters, after trimming
	// spaces (default 256; [search] max_query_length).
	MaxQueryLength int
	// MaxWords is the most words (runs of letters and digits) a query may
	// have (default 16; [search] max_terms).
	MaxWords int
}

func (l Limits) withDefaults() Limits {
	if l.MaxQueryLength <= 0 {
		l.MaxQueryLength = DefaultMaxQueryLength
	}
	if l.MaxWords <= 0 {
		l.MaxWords = DefaultMaxWords
	}
	return l
}

// ErrQueryTooLarge is wrapped by CheckQuery's errors: the query is over a
// limit (a client error; the message names the limit).
var ErrQueryTooLarge = errors.New("search query over a limit")

type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }
func (e *limitError) Unwrap() error { return ErrQueryTooLarge }

// CheckQuery returns an error wrapping ErrQueryTooLarge when q (trimmed)
// is longer than l.MaxQueryLength characters or has more than l.MaxWords
// words, and ErrEmptyQuery when it has nothing to search for.
func CheckQuery(q string, l Limits) error {
	l = l.withDefaults()
	q = strings.TrimSpace(q)
	if q == "" {
		return ErrEmptyQuery
	}
	if n := utf8.RuneCountInString(q); n > l.MaxQueryLength {
		return &limitError{fmt.Sprintf("search query is %d characters long; the limit is %d %s ([search] max_query_length)", n, l.MaxQueryLength, plural(l.MaxQueryLength, "character", "characters"))}
	}
	n := len(words(strings.ToLower(q)))
	if n == 0 {
		return ErrEmptyQuery
	}
	if n > l.MaxWords {
		return &limitError{fmt.Sprintf("search query has %d words; the limit is %d %s ([search] max_terms)", n, l.MaxWords, plural(l.MaxWords, "word", "words"))}
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
