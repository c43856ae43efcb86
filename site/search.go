package site

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/nixrepo/nixrepo/index"
)

// The static search index, under search/:
//
//	manifest.json  {"version":1, "packages":N, "repos":[…], "split":[…],
//	               "shards":{KEY:[count,hash]}, "names":{C:[count,hash]}}
//	s/KEY.json     the packages whose search key starts with KEY:
//	               [[name, latest, versions, [repo index…], description, file?]…]
//	n/C.json       every package whose search key starts with C:
//	               [[name, latest, versions, file?]…] (for substring and fuzzy matches)
//
// A name's search key maps each code point to itself for [a-z0-9], to its
// lower case for [A-Z], and to '_' otherwise (search.js computes it the same
// way). Shards form a prefix tree: a prefix in "split" had more than
// ShardSize packages and was split by one more character; its shard KEY
// then holds only the names whose key is exactly KEY. "file" is the page's
// file name when EncodeName changes the name. hash (of the file's bytes) is
// sent as ?h= so that browsers and CDNs may cache the files forever.

const (
	searchManifest = "search/manifest.json"
	maxShardDepth  = 64
	descMax        = 160
)

type searchManifestJSON struct {
	Version  int               `json:"version"`
	Packages int               `json:"packages"`
	Repos    []string          `json:"repos"`
	Split    []string          `json:"split"`
	Shards   map[string][2]any `json:"shards"`
	Names    map[string][2]any `json:"names"`
}

// searchKey is a name's search key (see above).
func searchKey(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + 'a' - 'A')
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// buildSearch returns the shard and name-list files, and the manifest
// (written last).
func buildSearch(pkgs []*index.Package, repos []index.RepoInfo, limit int) ([]File, File, error) {
	repoIdx := map[string]int{}
	m := searchManifestJSON{Version: 1, Repos: []string{}, Split: []string{}, Shards: map[string][2]any{}, Names: map[string][2]any{}}
	for i, r := range repos {
		repoIdx[r.Name] = i
		m.Repos = append(m.Repos, r.Name)
	}
	keys := make([]string, len(pkgs))
	var all []int
	for i, p := range pkgs {
		if p.Name == "" {
			continue
		}
		keys[i] = searchKey(p.Name)
		all = append(all, i)
	}
	m.Packages = len(all)

	shards := map[string][]int{}
	var walk func(prefix string, items []int)
	walk = func(prefix string, items []int) {
		m.Split = append(m.Split, prefix)
		groups := map[string][]int{}
		for _, i := range items {
			k := keys[i]
			if len(k) == len(prefix) {
				shards[prefix] = append(shards[prefix], i)
				continue
			}
			c := k[:len(prefix)+1]
			groups[c] = append(groups[c], i)
		}
		for c, its := range groups {
			if len(its) > limit && len(c) < maxShardDepth {
				walk(c, its)
			} else {
				shards[c] = its
			}
		}
	}
	walk("", all)
	sort.Strings(m.Split)

	var files []File
	shardKeys := make([]string, 0, len(shards))
	for k := range shards {
		shardKeys = append(shardKeys, k)
	}
	sort.Strings(shardKeys)
	for _, k := range shardKeys {
		rows := make([][]any, 0, len(shards[k]))
		for _, i := range shards[k] {
			p := pkgs[i]
			ri := []int{}
			for _, r := range p.Repos {
				if j, ok := repoIdx[r]; ok {
					ri = append(ri, j)
				}
			}
			row := []any{p.Name, p.Latest, len(p.Versions), ri, truncate(oneLine(p.Description), descMax)}
			if f := EncodeName(p.Name); f != p.Name {
				row = append(row, f)
			}
			rows = append(rows, row)
		}
		data, err := json.Marshal(rows)
		if err != nil {
			return nil, File{}, fmt.Errorf("site: search shard %s: %w", k, err)
		}
		files = append(files, File{Path: "search/s/" + k + ".json", Data: data, ContentType: ContentTypeJSON})
		m.Shards[k] = [2]any{len(rows), shortHash(data)}
	}

	names := map[string][][]any{}
	for _, i := range all {
		p := pkgs[i]
		row := []any{p.Name, p.Latest, len(p.Versions)}
		if f := EncodeName(p.Name); f != p.Name {
			row = append(row, f)
		}
		c := keys[i][:1]
		names[c] = append(names[c], row)
	}
	nameKeys := make([]string, 0, len(names))
	for c := range names {
		nameKeys = append(nameKeys, c)
	}
	sort.Strings(nameKeys)
	for _, c := range nameKeys {
		data, err := json.Marshal(names[c])
		if err != nil {
			return nil, File{}, fmt.Errorf("site: search names %s: %w", c, err)
		}
		files = append(files, File{Path: "search/n/" + c + ".json", Data: data, ContentType: ContentTypeJSON})
		m.Names[c] = [2]any{len(names[c]), shortHash(data)}
	}

	data, err := json.Marshal(m)
	if err != nil {
		return nil, File{}, err
	}
	return files, File{Path: searchManifest, Data: data, ContentType: ContentTypeJSON, late: true}, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
