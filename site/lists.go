package site

import (
	"fmt"
	"html/template"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// letterOf groups names in the package list: a–z, 0–9, or # for the rest.
func letterOf(name string) string {
	if name == "" {
		return "#"
	}
	c := name[0]
	switch {
	case c >= 'a' && c <= 'z':
		return string(c)
	case c >= 'A' && c <= 'Z':
		return string(c + 'a' - 'A')
	case c >= '0' && c <= '9':
		return "0-9"
	}
	return "#"
}

func listPath(n int) string {
	if n == 1 {
		return "packages/index.html"
	}
	return fmt.Sprintf("packages/~page%d.html", n)
}

// lists renders the package list: pages of PageSize packages in name order,
// with a letter index (each letter links to the page holding its first
// package) and a page index.
func (g *gen) lists(emit func(File) error) error {
	size := g.opts.PageSize
	pages := (len(g.pkgs) + size - 1) / size
	if pages == 0 {
		pages = 1
	}
	// Letters in order of first appearance (names are sorted bytewise, so
	// upper-case letters come before lower-case ones: keep one entry per
	// letter, at its first occurrence).
	type first struct {
		page  int
		count int
	}
	letters := map[string]*first{}
	var order []string
	for i, p := range g.pkgs {
		l := letterOf(p.Name)
		if f, ok := letters[l]; ok {
			f.count++
			continue
		}
		letters[l] = &first{page: i/size + 1, count: 1}
		order = append(order, l)
	}
	sort.Slice(order, func(i, j int) bool { return letterRank(order[i]) < letterRank(order[j]) })
	var links []letterLink
	for _, l := range order {
		f := letters[l]
		links = append(links, letterLink{Label: strings.ToUpper(l), Href: path.Base(listPath(f.page)) + "#" + letterAnchor(l), Count: f.count})
	}
	var pageLinks []pageLink
	for n := 1; n <= pages; n++ {
		lo, hi := (n-1)*size, n*size
		if hi > len(g.pkgs) {
			hi = len(g.pkgs)
		}
		pl := pageLink{N: n, Href: path.Base(listPath(n))}
		if lo < hi {
			pl.From, pl.To = g.pkgs[lo].Name, g.pkgs[hi-1].Name
		}
		pageLinks = append(pageLinks, pl)
	}
	for n := 1; n <= pages; n++ {
		lo, hi := (n-1)*size, n*size
		if hi > len(g.pkgs) {
			hi = len(g.pkgs)
		}
		d := listData{Total: len(g.pkgs), Page: n, Pages: pages, From: lo + 1, To: hi, Letters: links}
		if pages > 1 {
			d.PageLinks = make([]pageLink, len(pageLinks))
			copy(d.PageLinks, pageLinks)
			d.PageLinks[n-1].Current = true
		}
		if n > 1 {
			d.Prev = path.Base(listPath(n - 1))
		}
		if n < pages {
			d.Next = path.Base(listPath(n + 1))
		}
		groupIdx := map[string]int{}
		for _, p := range g.pkgs[lo:hi] {
			l := letterOf(p.Name)
			gi, ok := groupIdx[l]
			if !ok {
				gi = len(d.Groups)
				groupIdx[l] = gi
				grp := listGroup{Label: strings.ToUpper(l)}
				// The anchor goes on the letter's first occurrence only.
				if letters[l].page == n {
					grp.Anchor = letterAnchor(l)
				}
				d.Groups = append(d.Groups, grp)
			}
			d.Groups[gi].Items = append(d.Groups[gi].Items, listItem{
				Name: p.Name, Href: path.Base(PackagePath(p.Name)), Latest: p.Latest,
				Versions: len(p.Versions), Repos: p.Repos, Description: truncate(p.Description, 160),
			})
		}
		sort.SliceStable(d.Groups, func(i, j int) bool { return letterRank(d.Groups[i].Label) < letterRank(d.Groups[j].Label) })
		title := "Packages"
		if pages > 1 {
			title = fmt.Sprintf("Packages (page %d of %d)", n, pages)
		}
		data, err := g.exec("packages.html", g.page("../", "packages", title, d))
		if err != nil {
			return err
		}
		if err := emit(File{Path: listPath(n), Data: data, ContentType: ContentTypeHTML, late: true}); err != nil {
			return err
		}
	}
	return nil
}

func letterAnchor(l string) string {
	switch l {
	case "0-9":
		return "l-0"
	case "#":
		return "l-other"
	}
	return "l-" + strings.ToLower(l)
}

func letterRank(l string) string {
	switch strings.ToLower(l) {
	case "0-9":
		return "0"
	case "#":
		return "2"
	}
	return "1" + strings.ToLower(l)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// humanSize prints a byte count in binary units.
func humanSize(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= 1024
		if f < 1024 || u == "TiB" {
			if f < 10 {
				return fmt.Sprintf("%.1f %s", f, u)
			}
			return fmt.Sprintf("%.0f %s", f, u)
		}
	}
	return ""
}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return fmtTime(t)
	},
	"join": strings.Join,
	"plural": func(n int, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	},
}
