package index

import (
	"time"

	"github.com/nixrepo/nixrepo/internal/store"
)

// Catalog is the package catalog of all repositories: every store path
// grouped by package and version, with where it lives and which channel
// snapshots carried it. It is the data behind search, the server's package
// API and the static site.
type Catalog struct {
	Generated time.Time     `json:"generated"`
	Repos     []RepoInfo    `json:"repos"`
	Channels  []ChannelInfo `json:"channels"`
	// Packages is sorted by Name.
	Packages []Package `json:"packages"`
	// Stats counts what was cataloged.
	Stats Stats `json:"stats"`
}

// Stats are catalog totals.
type Stats struct {
	Paths       int `json:"paths"`       // store paths of kind package
	Derivations int `json:"derivations"` // .drv paths (not shown as packages)
	Sources     int `json:"sources"`     // source paths (not shown as packages)
	Other       int `json:"other"`       // paths without a version
	Packages    int `json:"packages"`
	Versions    int `json:"versions"`
}

// RepoInfo describes a repository in the catalog.
type RepoInfo struct {
	Name        string `json:"name"`
	Type        string `json:"type"` // local, remote, virtual
	Priority    int    `json:"priority,omitempty"`
	Description string `json:"description,omitempty"`
	PublicKey   string `json:"publicKey,omitempty"`
	Paths       int    `json:"paths"`
}

// ChannelInfo describes a channel and its snapshots, newest first in the
// channel's own order (store.Channel.InOrder).
type ChannelInfo struct {
	Repo      string         `json:"repo"`
	Name      string         `json:"name"`
	Latest    string         `json:"latest"`
	Snapshots []SnapshotInfo `json:"snapshots"`
}

// Rel is the channel's name in its repository (store.ChannelRel), the
// server's route to it.
func (c *ChannelInfo) Rel() string { return store.ChannelRel(c.Name) }

// LatestRel is the current snapshot's tarball copy in the repository
// (store.ChannelLatestRel), for static hosting.
func (c *ChannelInfo) LatestRel() string { return store.ChannelLatestRel(c.Name) }

// TarballRel is the tarball of snapshot s of the channel in the repository.
func (c *ChannelInfo) TarballRel(s SnapshotInfo) string {
	return store.SnapshotFileRel(c.Name, s.Flavor, s.ID, store.ChannelTarball)
}

// SnapshotInfo is one channel snapshot.
type SnapshotInfo struct {
	ID       string    `json:"id"`
	Flavor   string    `json:"flavor"`
	NarHash  string    `json:"narHash"` // fetchTarball sha256 (nix32)
	Uploaded time.Time `json:"uploaded"`
	// Paths is the number of store paths its store-paths.xz lists (0 when
	// the snapshot has none).
	Paths int `json:"paths"`
}

// Package is one package name across all repositories.
type Package struct {
	Name string `json:"name"`
	// Latest is the highest version by CompareVersions.
	Latest string `json:"latest"`
	// Versions, highest first (CompareVersions); versions that compare
	// equal but are spelled differently are separate, flagged Ambiguous.
	Versions []Version `json:"versions"`
	Repos    []string  `json:"repos"` // sorted
	// Metadata joined from channels' packages.json.br, when known.
	Description string `json:"description,omitempty"`
	Homepage    string `json:"homepage,omitempty"`
	License     string `json:"license,omitempty"`
	AttrPath    string `json:"attrPath,omitempty"`
}

// Version is one version of a package.
type Version struct {
	Version string     `json:"version"`
	Paths   []PathInfo `json:"paths"` // sorted by output, then store path
	Repos   []string   `json:"repos"` // sorted
	// Channels lists "repo/channel/snapshot" of the snapshots that carried
	// this version, oldest first.
	Channels []string `json:"channels,omitempty"`
	// Ambiguous: another spelling of this version compares equal (e.g.
	// "2023-01-01" and "2023-1-1"), or several store paths of the same
	// output exist for it (different builds).
	Ambiguous bool `json:"ambiguous,omitempty"`
}

// PathInfo is one store path of a version.
type PathInfo struct {
	StorePath string    `json:"storePath"`
	Output    string    `json:"output"`
	NarSize   uint64    `json:"narSize"`
	FileSize  uint64    `json:"fileSize"`
	Uploaded  time.Time `json:"uploaded"` // the narinfo's modification time
	Repos     []string  `json:"repos"`
}
