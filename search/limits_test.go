package search

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/index"
)

func TestCheckQueryLimits(t *testing.T) {
	tests := []struct {
		query  string
		limits Limits
		want   string // "" accepted, "empty", or a substring of the refusal
	}{
		{"hello", Limits{}, ""},
		{strings.Repeat("a", 256), Limits{}, ""},
		{"  " + strings.Repeat("a", 256) + "  ", Limits{}, ""}, // trimmed first
		{strings.Repeat("a", 257), Limits{}, "search query is 257 characters long; the limit is 256 characters ([search] max_query_length)"},
		{strings.Repeat("é", 257), Limits{}, "257 characters long"}, // characters, not bytes
		{strings.Repeat("é", 256), Limits{}, ""},
		{strings.Repeat("a ", 16), Limits{}, ""},
		{strings.Repeat("a ", 17), Limits{}, "search query has 17 words; the limit is 16 words ([search] max_terms)"},
		{"a-b-c-d", Limits{MaxWords: 3}, "has 4 words; the limit is 3 words"},
		{strings.Repeat("x", 11), Limits{MaxQueryLength: 10}, "the limit is 10 characters"},
		{strings.Repeat("x", 3000), Limits{MaxQueryLength: 3000}, ""},
		{"", Limits{}, "empty"},
		{"  -.- ", Limits{}, "empty"},
	}
	for _, tc := range tests {
		err := CheckQuery(tc.query, tc.limits)
		switch {
		case tc.want == "":
			if err != nil {
				t.Errorf("CheckQuery(%.20q…, %+v) = %v, want accepted", tc.query, tc.limits, err)
			}
		case tc.want == "empty":
			if !errors.Is(err, ErrEmptyQuery) {
				t.Errorf("CheckQuery(%q) = %v, want ErrEmptyQuery", tc.query, err)
			}
		default:
			if !errors.Is(err, ErrQueryTooLarge) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckQuery(%.20q…, %+v) = %v, want ErrQueryTooLarge saying %q", tc.query, tc.limits, err, tc.want)
			}
		}
	}
}

// TestSearchRefusesQueryOverLimits: a query past the limits is refused
// before anything is looked up (a 3000-character query used to build a
// fuzzy automaton of hundreds of MB and fail with bleve's "dfa contains
// more than 10000 states").
func TestSearchRefusesQueryOverLimits(t *testing.T) {
	x := buildTestIndex(t, 2)
	for _, q := range []string{strings.Repeat("a", 3000), strings.Repeat("hellp ", 500), strings.Repeat("hello ", 17)} {
		if _, err := Search(x, q, nil); !errors.Is(err, ErrQueryTooLarge) {
			t.Errorf("Search(%.20q… of %d characters) = %v, want ErrQueryTooLarge", q, len(q), err)
		}
	}
	if _, err := Search(x, "hello", &Options{Limits: Limits{MaxQueryLength: 4}}); !errors.Is(err, ErrQueryTooLarge) {
		t.Errorf("Search(hello) with max_query_length 4 = %v, want ErrQueryTooLarge", err)
	}
}

// TestSearchFuzzyIsBoundedWithoutQueryLimits: even with the query limits
// raised far, long queries stay cheap: no fuzzy automaton for a whole
// name over 64 characters or a word over 32, and no fuzzy words tier for
// more than 4 unknown words.
func TestSearchFuzzyIsBoundedWithoutQueryLimits(t *testing.T) {
	x := buildTestIndex(t, 2)
	raised := &Options{Limits: Limits{MaxQueryLength: 1 << 20, MaxWords: 1 << 20}}
	for _, q := range []string{strings.Repeat("a", 3000), strings.Repeat("a ", 1500), strings.Repeat("hellp ", 500)} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Search(x, q, raised)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Errorf("Search(%.20q… of %d characters) = %v", q, len(q), err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
			t.Errorf("Search(%.20q… of %d characters) allocated %d MB", q, len(q), alloc>>20)
		}
	}
}

func TestSearchFuzzyWordBounds(t *testing.T) {
	w32, w33 := strings.Repeat("abcdefgh", 4), strings.Repeat("abcdefgh", 4)+"i"
	pkgs := []index.Package{
		pkg("alpha-bravo-charlie-delta-echo", "", "1@main"),
		pkg("x-"+w32, "", "1@main"),
		pkg("y-"+w33, "", "1@main"),
	}
	slices.SortFunc(pkgs, func(a, b index.Package) int { return strings.Compare(a.Name, b.Name) })
	dir := t.TempDir()
	if err := index.BuildIndex(dir, pkgs, 1, 1); err != nil {
		t.Fatal(err)
	}
	x, err := index.OpenIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	typo := func(w string) string { return "z" + w[1:] }
	tests := []struct {
		query string
		want  []string
	}{
		{"alpho bravo charlie delta echo", []string{"alpha-bravo-charlie-delta-echo:fuzzy"}},
		{"alpho brava charlia delte echo", []string{"alpha-bravo-charlie-delta-echo:fuzzy"}}, // 4 unknown words
		{"alpho brava charlia delte echa", nil},                                              // 5: not a typo
		{typo(w32), []string{"x-" + w32 + ":fuzzy"}},
		{typo(w33), nil}, // longer than 32 characters: taken as typed
	}
	for _, tc := range tests {
		got, err := Search(x, tc.query, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names(got), tc.want) {
			t.Errorf("Search(%q) = %v, want %v", tc.query, names(got), tc.want)
		}
	}
}

// FuzzSearch: any query is refused (empty, or over a limit) or answered
// without an error, and an answer never has more results than the limit.
func FuzzSearch(f *testing.F) {
	for _, s := range []string{"hello", "hellp wayland", "python3.11-helo", strings.Repeat("a", 300), "é", "\x00\xff", "a b c d e f g h i j k l m n o p q", "SDL2 !!"} {
		f.Add(s)
	}
	x := buildTestIndex(f, 2)
	f.Fuzz(func(t *testing.T, q string) {
		res, err := Search(x, q, &Options{Limit: 5})
		if err != nil {
			if !errors.Is(err, ErrEmptyQuery) && !errors.Is(err, ErrQueryTooLarge) {
				t.Fatalf("Search(%q) = %v", q, err)
			}
			if CheckQuery(q, Limits{}) == nil {
				t.Fatalf("Search(%q) refused a query CheckQuery accepts: %v", q, err)
			}
			return
		}
		if len(res) > 5 {
			t.Fatalf("Search(%q) = %d results, limit 5", q, len(res))
		}
	})
}
