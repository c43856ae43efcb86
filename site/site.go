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
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

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

// The routes of `nixrepo serve` the site links to (server.NixPrefix and
// server.UploadPrefix; a test of the command checks they agree): ServerPrefix
// serves repositories to readers, ServerUploadPrefix the same to uploaders,
// so that Nix's cache of the unsigned narinfos it uploaded is kept under
// another URL than the one the same machine substitutes from.
const (
	ServerPrefix       = "/api/nix/"
	ServerUploadPrefix = "/api/upload/"
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
	// Repos, when not nil, are the only repositories the site shows: the
	// catalog is cut down to them before anything is rendered, so no page
	// or search shard has a package, version, store path, channel or
	// repository name of another (a package found only elsewhere is not
	// on the site; one also found elsewhere shows only these
	// repositories' paths). nil shows every repository of the catalog.
	Repos []string
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
	late        bool // see Late; set where the entry points are rendered
}

// Late reports whether f is an entry point that links to many other files
// (the home page, the package list pages and the search manifest). A
// publisher that writes late files after all the others never shows a link
// to a file that is not there yet.
func (f File) Late() bool { return f.late }

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
	if opts.Repos != nil {
		cat = restrict(cat, opts.Repos)
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
			Server:     opts.ServerURL + ServerPrefix + r.Name + prio,
			Upload:     opts.ServerURL + ServerUploadPrefix + r.Name,
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
			Static: fmt.Sprintf("%s/%s/%s", opts.BaseURL, c.Repo, c.LatestRel()),
			Server: fmt.Sprintf("%s%s%s/%s", opts.ServerURL, ServerPrefix, c.Repo, c.Rel()),
		}
		for _, s := range c.Snapshots {
			rel := c.Repo + "/" + c.TarballRel(s)
			sv := snapView{
				SnapshotInfo: s,
				Anchor:       anchor("s-", c.Repo, c.Name, s.ID),
				Current:      s.ID == c.Latest,
				Static:       opts.BaseURL + "/" + rel,
				Server:       opts.ServerURL + ServerPrefix + rel,
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
		data, err := g.exec("setup.html", g.page("../", "setup", "Set up "+rv.Name, setupData{Repo: rv, Base: g.opts.BaseURL, BaseSet: g.opts.BaseURL != Placeholder}))
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
	return emit(File{Path: "index.html", Data: data, ContentType: ContentTypeHTML, late: true})
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
