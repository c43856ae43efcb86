package site

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/url"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nixrepo/nixrepo/index"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/site.css assets/search.js
var assetFS embed.FS

// Content types of the rendered files.
const (
	ContentTypeHTML = "text/html; charset=utf-8"
	ContentTypeCSS  = "text/css; charset=utf-8"
	ContentTypeJS   = "text/javascript; charset=utf-8"
	ContentTypeJSON = "application/json"
)

// maxInlineManifest bounds the search manifest that the home page carries
// inline.
const maxInlineManifest = 64 << 10

// Placeholder stands for the site's host when Options.BaseURL is empty.
const Placeholder = "https://YOUR-HOST"

// Defaults of Options.
const (
	DefaultTitle     = "nixrepo"
	DefaultPageSize  = 1000
	DefaultShardSize = 1000
)

// Options configures Render.
type Options struct {
	// BaseURL is where the bucket is served statically (nginx, S3 website,
	// CDN): BaseURL/R is repository R's substituter. Empty: the pages show
	// Placeholder instead.
	BaseURL string
	// ServerURL is where `nixrepo serve` answers (BaseURL/api/nix/R is a
	// repository); empty: BaseURL.
	ServerURL string
	// Title names the site (default "nixrepo").
	Title string
	// PageSize is the number of packages per page of the package list
	// (default 1000).
	PageSize int
	// ShardSize bounds the packages per search shard (default 1000); a
	// prefix with more packages is split by one more character.
	ShardSize int
}

func (o Options) withDefaults() Options {
	o.BaseURL = strings.TrimRight(strings.TrimSpace(o.BaseURL), "/")
	o.ServerURL = strings.TrimRight(strings.TrimSpace(o.ServerURL), "/")
	if o.BaseURL == "" {
		o.BaseURL = Placeholder
	}
	if o.ServerURL == "" {
		o.ServerURL = o.BaseURL
	}
	if o.Title == "" {
		o.Title = DefaultTitle
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.ShardSize <= 0 {
		o.ShardSize = DefaultShardSize
	}
	return o
}

// File is one rendered file.
type File struct {
	// Path is relative to the site's root, slash-separated.
	Path        string
	Data        []byte
	ContentType string
}

// Late reports whether f is an entry point that links to many other files
// (the home page, the package list pages and the search manifest). A
// publisher that writes late files after all the others never shows a link
// to a file that is not there yet.
func (f File) Late() bool {
	return f.Path == "index.html" || f.Path == searchManifest ||
		f.Path == "packages/index.html" || strings.HasPrefix(f.Path, "packages/~page")
}

// Render renders the whole site of cat.
func Render(cat *index.Catalog, opts Options) ([]File, error) {
	var files []File
	err := Generate(cat, opts, func(f File) error {
		files = append(files, f)
		return nil
	})
	return files, err
}

// Generate renders the site of cat like Render but hands each file to emit
// as soon as it is ready, so that a large catalog's pages need not be held
// in memory together. Files come in write order: the pages of the packages
// and the search shards first, the late files (see File.Late) last. An
// error from emit stops Generate and is returned.
func Generate(cat *index.Catalog, opts Options, emit func(File) error) error {
	if cat == nil {
		return errors.New("site: nil catalog")
	}
	g, err := newGen(cat, opts.withDefaults())
	if err != nil {
		return err
	}
	return g.run(emit)
}

// PackagePath is the path of the page of package name: packages/<name>.html
// with name encoded by EncodeName.
func PackagePath(name string) string { return "packages/" + EncodeName(name) + ".html" }

// EncodeName makes name safe as a file name and URL path segment: bytes
// outside [A-Za-z0-9._+-] (and a leading '.') become "~XX" (upper-case
// hex). The empty name is "~"; "index", which would collide with the
// package list, is "~69ndex". Encoded names never contain '~' followed by
// anything but two upper-case hex digits, so file names like
// "packages/~page2.html" are free for the site's own pages. Names whose
// encoding exceeds 200 bytes are cut and made unique with a hash.
func EncodeName(name string) string {
	if name == "" {
		return "~"
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isSafe(c) && !(i == 0 && c == '.') {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "~%02X", c)
		}
	}
	s := b.String()
	if s == "index" {
		return "~69ndex"
	}
	if len(s) > 200 {
		sum := sha256.Sum256([]byte(name))
		cut := 180
		// Don't cut an escape in half.
		if i := strings.LastIndexByte(s[:cut], '~'); i >= cut-2 {
			cut = i
		}
		s = s[:cut] + "~~" + hex.EncodeToString(sum[:8])
	}
	return s
}

func isSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '+' || c == '-'
}

// anchor makes an HTML id (and URL fragment) from parts.
func anchor(prefix string, parts ...string) string {
	for i, p := range parts {
		parts[i] = EncodeName(p)
	}
	return prefix + strings.Join(parts, "~2F")
}

// --- views ---

type assetURLs struct{ CSS, JS string }

// page is what the layout template renders.
type page struct {
	Site   string
	Title  string
	Root   string // relative path from the page to the site root: "" or "../"
	Nav    string // home, packages, channels, setup
	Assets assetURLs
	Home   bool
	Body   any
}

type repoView struct {
	index.RepoInfo
	Packages   int
	SetupHref  string // relative to the root
	Static     string // substituter URL, static hosting
	Server     string // substituter URL, nixrepo serve
	Upload     string // nix copy --to URL
	Key        string
	KeyMissing bool
	Host       string
	Channels   []*channelView
}

type channelView struct {
	Repo, Name, Latest string
	Anchor             string
	Static, Server     string // nix-channel --add URLs
	Snapshots          []snapView
	Current            *snapView
}

type snapView struct {
	index.SnapshotInfo
	Anchor         string
	Current        bool
	Static, Server string // immutable tarball URLs
}

type homeData struct {
	Generated string
	Stats     index.Stats
	Packages  int
	Repos     []*repoView
	Channels  []*channelView
	Manifest  string // URL of search/manifest.json
	// ManifestJSON is the manifest itself, inlined to save a request
	// before the first results (empty when it is large).
	ManifestJSON string
	Base         string
	BaseSet      bool
}

type channelsData struct {
	Channels []*channelView
	BaseSet  bool
}

type setupData struct {
	Repo    *repoView
	Base    string
	Server  string
	BaseSet bool
}

// The package page's views are flat structs of preformatted strings:
// html/template looks fields up by reflection, and this page is rendered
// once per package.
type pkgData struct {
	Name, Latest, Description string
	Homepage                  string
	HomepageURL               string // Homepage when it is an http(s) URL
	License, AttrPath         string
	LatestAnchor              string
	Versions                  []verView
	Repos                     []repoLink
}

type repoLink struct{ Name, Href string }

type verView struct {
	Version   string
	Anchor    string
	Latest    bool
	Ambiguous bool
	Repos     string
	Outputs   []pathView
	Channels  []chanRef
}

type pathView struct {
	Output, StorePath   string
	NarSize, NarBytes   string
	FileSize, FileBytes string
	Uploaded            string
	Repos               string
}

type chanRef struct{ Label, Href string }

type listData struct {
	Total     int
	Page      int
	Pages     int
	From, To  int
	Letters   []letterLink
	Groups    []listGroup
	Prev      string
	Next      string
	PageLinks []pageLink
}

type letterLink struct {
	Label string
	Href  string
	Count int
}

type listGroup struct {
	Label  string
	Anchor string
	Items  []listItem
}

type listItem struct {
	Name, Href, Latest, Description string
	Versions                        int
	Repos                           []string
}

type pageLink struct {
	N        int
	Href     string
	From, To string
	Current  bool
}

// --- generator ---

type gen struct {
	cat      *index.Catalog
	opts     Options
	tmpl     map[string]*template.Template
	assets   []File
	assetURL assetURLs
	pkgs     []*index.Package // sorted by name
	repos    []*repoView
	repoByNm map[string]*repoView
	channels []*channelView
	chanByID map[string]string // "repo/channel/snapshot" → href from the root
	buf      bytes.Buffer
}

func newGen(cat *index.Catalog, opts Options) (*gen, error) {
	g := &gen{cat: cat, opts: opts, tmpl: map[string]*template.Template{}, repoByNm: map[string]*repoView{}, chanByID: map[string]string{}}
	for _, name := range []string{"index.html", "packages.html", "package.html", "channels.html", "setup.html"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("site: template %s: %w", name, err)
		}
		g.tmpl[name] = t
	}
	for _, a := range []struct{ file, ct string }{{"site.css", ContentTypeCSS}, {"search.js", ContentTypeJS}} {
		data, err := assetFS.ReadFile("assets/" + a.file)
		if err != nil {
			return nil, err
		}
		g.assets = append(g.assets, File{Path: "assets/" + a.file, Data: data, ContentType: a.ct})
	}
	g.assetURL = assetURLs{CSS: "assets/site.css?v=" + shortHash(g.assets[0].Data), JS: "assets/search.js?v=" + shortHash(g.assets[1].Data)}

	g.pkgs = make([]*index.Package, len(cat.Packages))
	seen := make(map[string]string, len(cat.Packages))
	for i := range cat.Packages {
		p := &cat.Packages[i]
		g.pkgs[i] = p
		f := EncodeName(p.Name)
		if other, dup := seen[f]; dup {
			return nil, fmt.Errorf("site: packages %q and %q have the same page %s", other, p.Name, f)
		}
		seen[f] = p.Name
	}
	sort.SliceStable(g.pkgs, func(i, j int) bool { return g.pkgs[i].Name < g.pkgs[j].Name })

	counts := map[string]int{}
	for _, p := range g.pkgs {
		for _, r := range p.Repos {
			counts[r]++
		}
	}
	host := hostOf(opts.ServerURL)
	for _, r := range cat.Repos {
		prio := ""
		if r.Priority > 0 {
			prio = fmt.Sprintf("?priority=%d", r.Priority)
		}
		key := r.PublicKey
		rv := &repoView{
			RepoInfo:   r,
			Packages:   counts[r.Name],
			SetupHref:  "setup/" + EncodeName(r.Name) + ".html",
			Static:     opts.BaseURL + "/" + r.Name + prio,
			Server:     opts.ServerURL + "/api/nix/" + r.Name + prio,
			Upload:     opts.ServerURL + "/api/nix/" + r.Name,
			Key:        key,
			KeyMissing: key == "",
			Host:       host,
		}
		if rv.KeyMissing {
			rv.Key = r.Name + "-1:PUBLIC-KEY"
		}
		if _, dup := g.repoByNm[r.Name]; dup {
			return nil, fmt.Errorf("site: repository %q listed twice", r.Name)
		}
		g.repos = append(g.repos, rv)
		g.repoByNm[r.Name] = rv
	}
	for _, c := range cat.Channels {
		cv := &channelView{
			Repo: c.Repo, Name: c.Name, Latest: c.Latest,
			Anchor: anchor("ch-", c.Repo, c.Name),
			Static: fmt.Sprintf("%s/%s/channels/%s/nixexprs.tar.xz", opts.BaseURL, c.Repo, c.Name),
			Server: fmt.Sprintf("%s/api/nix/%s/channels/%s", opts.ServerURL, c.Repo, c.Name),
		}
		for _, s := range c.Snapshots {
			rel := fmt.Sprintf("%s/channels/%s/%s/%s/nixexprs.tar.xz", c.Repo, c.Name, s.Flavor, s.ID)
			sv := snapView{
				SnapshotInfo: s,
				Anchor:       anchor("s-", c.Repo, c.Name, s.ID),
				Current:      s.ID == c.Latest,
				Static:       opts.BaseURL + "/" + rel,
				Server:       opts.ServerURL + "/api/nix/" + rel,
			}
			cv.Snapshots = append(cv.Snapshots, sv)
			g.chanByID[c.Repo+"/"+c.Name+"/"+s.ID] = "channels.html#" + sv.Anchor
		}
		for i := range cv.Snapshots {
			if cv.Snapshots[i].Current {
				cv.Current = &cv.Snapshots[i]
			}
		}
		g.channels = append(g.channels, cv)
		if rv := g.repoByNm[c.Repo]; rv != nil {
			rv.Channels = append(rv.Channels, cv)
		}
	}
	return g, nil
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Hostname() == "" {
		return "YOUR-HOST"
	}
	return p.Hostname()
}

func shortHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:5])
}

func (g *gen) page(root, nav, title string, body any) page {
	return page{
		Site:   g.opts.Title,
		Title:  title,
		Root:   root,
		Nav:    nav,
		Assets: g.assetURL,
		Home:   nav == "home",
		Body:   body,
	}
}

func (g *gen) exec(name string, p page) ([]byte, error) {
	return g.execBuf(&g.buf, name, p)
}

func (g *gen) execBuf(buf *bytes.Buffer, name string, p page) ([]byte, error) {
	buf.Reset()
	if err := g.tmpl[name].Execute(buf, p); err != nil {
		return nil, fmt.Errorf("site: render %s: %w", name, err)
	}
	return bytes.Clone(buf.Bytes()), nil
}

// packagePages renders the package pages on every CPU, a batch at a time,
// and emits them in name order.
func (g *gen) packagePages(emit func(File) error) error {
	workers := runtime.GOMAXPROCS(0)
	const batch = 512
	out := make([]File, batch)
	errs := make([]error, workers)
	bufs := make([]bytes.Buffer, workers)
	for lo := 0; lo < len(g.pkgs); lo += batch {
		hi := min(lo+batch, len(g.pkgs))
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := lo + w; i < hi; i += workers {
					p := g.pkgs[i]
					data, err := g.execBuf(&bufs[w], "package.html", g.page("../", "packages", p.Name, g.pkgData(p)))
					if err != nil {
						errs[w] = err
						return
					}
					out[i-lo] = File{Path: PackagePath(p.Name), Data: data, ContentType: ContentTypeHTML}
				}
			}(w)
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		for i := range hi - lo {
			if err := emit(out[i]); err != nil {
				return err
			}
			out[i] = File{}
		}
	}
	return nil
}

func (g *gen) run(emit func(File) error) error {
	// Package pages first: everything else links to them.
	if err := g.packagePages(emit); err != nil {
		return err
	}
	for _, a := range g.assets {
		if err := emit(a); err != nil {
			return err
		}
	}
	search, manifest, err := buildSearch(g.pkgs, g.cat.Repos, g.opts.ShardSize)
	if err != nil {
		return err
	}
	for _, f := range search {
		if err := emit(f); err != nil {
			return err
		}
	}
	for _, rv := range g.repos {
		data, err := g.exec("setup.html", g.page("../", "setup", "Set up "+rv.Name, setupData{Repo: rv, Base: g.opts.BaseURL, Server: g.opts.ServerURL, BaseSet: g.opts.BaseURL != Placeholder}))
		if err != nil {
			return err
		}
		if err := emit(File{Path: rv.SetupHref, Data: data, ContentType: ContentTypeHTML}); err != nil {
			return err
		}
	}
	data, err := g.exec("channels.html", g.page("", "channels", "Channels", channelsData{Channels: g.channels, BaseSet: g.opts.BaseURL != Placeholder}))
	if err != nil {
		return err
	}
	if err := emit(File{Path: "channels.html", Data: data, ContentType: ContentTypeHTML}); err != nil {
		return err
	}
	// Late files: the package list, the search manifest, the home page.
	if err := g.lists(emit); err != nil {
		return err
	}
	if err := emit(manifest); err != nil {
		return err
	}
	gen := ""
	if !g.cat.Generated.IsZero() {
		gen = fmtTime(g.cat.Generated)
	}
	home := homeData{
		Generated: gen, Stats: g.cat.Stats, Packages: len(g.pkgs), Repos: g.repos, Channels: g.channels,
		Manifest: searchManifest + "?h=" + shortHash(manifest.Data),
		Base:     g.opts.BaseURL, BaseSet: g.opts.BaseURL != Placeholder,
	}
	if len(manifest.Data) <= maxInlineManifest {
		home.ManifestJSON = string(manifest.Data)
	}
	data, err = g.exec("index.html", g.page("", "home", g.opts.Title, home))
	if err != nil {
		return err
	}
	return emit(File{Path: "index.html", Data: data, ContentType: ContentTypeHTML})
}

func (g *gen) pkgData(p *index.Package) pkgData {
	d := pkgData{Name: p.Name, Latest: p.Latest, Description: p.Description, Homepage: p.Homepage, License: p.License, AttrPath: p.AttrPath}
	if u, err := url.Parse(p.Homepage); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		d.HomepageURL = p.Homepage
	}
	for _, r := range p.Repos {
		d.Repos = append(d.Repos, g.repoLink(r))
	}
	d.Versions = make([]verView, 0, len(p.Versions))
	for i := range p.Versions {
		v := &p.Versions[i]
		vv := verView{Version: v.Version, Anchor: anchor("v-", v.Version), Latest: v.Version == p.Latest,
			Ambiguous: v.Ambiguous, Repos: strings.Join(v.Repos, ", "), Outputs: make([]pathView, 0, len(v.Paths))}
		if vv.Latest && d.LatestAnchor == "" {
			d.LatestAnchor = vv.Anchor
		}
		for j := range v.Paths {
			pi := &v.Paths[j]
			pv := pathView{
				Output: pi.Output, StorePath: pi.StorePath,
				NarSize: humanSize(pi.NarSize), NarBytes: strconv.FormatUint(pi.NarSize, 10),
				FileSize: humanSize(pi.FileSize), FileBytes: strconv.FormatUint(pi.FileSize, 10),
				Repos: strings.Join(pi.Repos, ", "),
			}
			if !pi.Uploaded.IsZero() {
				pv.Uploaded = fmtTime(pi.Uploaded)
			}
			vv.Outputs = append(vv.Outputs, pv)
		}
		for _, c := range v.Channels {
			ref := chanRef{Label: c}
			if h, ok := g.chanByID[c]; ok {
				ref.Href = h
			}
			vv.Channels = append(vv.Channels, ref)
		}
		d.Versions = append(d.Versions, vv)
	}
	return d
}

func (g *gen) repoLink(name string) repoLink {
	if rv, ok := g.repoByNm[name]; ok {
		return repoLink{Name: name, Href: rv.SetupHref}
	}
	return repoLink{Name: name}
}

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
		if err := emit(File{Path: listPath(n), Data: data, ContentType: ContentTypeHTML}); err != nil {
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
	"size": humanSize,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return fmtTime(t)
	},
	"pkgHref": func(name string) string { return path.Base(PackagePath(name)) },
	"join":    strings.Join,
	"plural": func(n int, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	},
	"add": func(a, b int) int { return a + b },
}
