package site

import (
	"github.com/nixrepo/nixrepo/index"
)

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
