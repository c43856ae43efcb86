package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/nixrepo/nixrepo/internal/nix"
)

// Version is the only configuration format version this build understands.
const Version = 1

// Repository types.
const (
	TypeLocal   = "local"
	TypeRemote  = "remote"
	TypeVirtual = "virtual"
)

// Defaults for remote repositories.
const (
	DefaultUpstream         = "https://cache.nixos.org"
	DefaultChannelsUpstream = "https://channels.nixos.org"
	// CacheNixosOrgKey is trusted by default for the default upstream.
	CacheNixosOrgKey = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
)

// Config is a parsed and validated nixrepo.toml.
type Config struct {
	Version  int      `toml:"version"`
	Store    Store    `toml:"store"`
	Ingest   Ingest   `toml:"ingest"`
	Server   Server   `toml:"server"`
	Channels Channels `toml:"channels"`
	Site     Site     `toml:"site"`
	Search   Search   `toml:"search"`
	Repos    []Repo   `toml:"repo"`
	Tokens   []Token  `toml:"token"`

	// Dir is the folder relative paths and relative file:// URLs resolve
	// against: the folder of the config file. It is not read from TOML.
	Dir string `toml:"-"`
	// Source names where the configuration came from (a file path or
	// "embedded default"), for messages.
	Source string `toml:"-"`
}

// Store configures the bucket that holds every repository.
type Store struct {
	// URL is any gocloud blob URL. A relative file:// URL such as
	// "file://./var/store" resolves against the config file's folder.
	URL string `toml:"url"`
	// TempDir is the folder nixrepo keeps its temporary files in (upload
	// spools, unpacked channels, a file bucket's writes in progress), one
	// sub-folder per process. Default: tmp beside a file:// store's folder
	// (so the bucket's renames stay on one file system), else nixrepo-UID in
	// the system's temporary folder. Relative to the config file's folder.
	TempDir string `toml:"temp_dir"`
}

// Channels bounds the channel tarballs nixrepo accepts: channel push, the
// server's channel uploads and mirrored channels. 0 takes the default of
// package ingest (200,000 entries, 2 GiB unpacked, 4 GiB as sent) or of
// the server (2 unpacks at once).
type Channels struct {
	// MaxTarballEntries bounds the entries (headers) of one tarball.
	MaxTarballEntries int `toml:"max_tarball_entries"`
	// MaxTarballUnpackedSize bounds one tarball's decompressed tar stream.
	MaxTarballUnpackedSize Size `toml:"max_tarball_unpacked_size"`
	// MaxTarballSize bounds one tarball as pushed, uploaded (with
	// [server] max_object_size) or downloaded from a channel upstream.
	MaxTarballSize Size `toml:"max_tarball_size"`
	// MaxConcurrentUnpacks bounds the tarballs the server unpacks at once.
	MaxConcurrentUnpacks int `toml:"max_concurrent_unpacks"`
}

// Ingest tunes batch ingestion.
type Ingest struct {
	// Workers is the number of paths verified in parallel; 0 means one per CPU.
	Workers int `toml:"workers"`
}

// Server configures `nixrepo serve`.
type Server struct {
	// Listen is the address to listen on (default 127.0.0.1:8080).
	Listen string `toml:"listen"`
	// TLSCertFile and TLSKeyFile enable HTTPS when both are set.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// MaxObjectSize bounds one uploaded object ("10GiB", "512MiB", or bytes).
	MaxObjectSize Size `toml:"max_object_size"`
	// MaxUploads bounds concurrent uploads; more wait their turn.
	MaxUploads int `toml:"max_uploads"`
	// MaxUploadsPerToken bounds the upload slots one token holds.
	MaxUploadsPerToken int `toml:"max_uploads_per_token"`
	// MaxUploadsPerRepo bounds the upload slots uploads to one repository hold.
	MaxUploadsPerRepo int `toml:"max_uploads_per_repo"`
	// MaxQueuedUploadsPerToken bounds one token's uploads waiting for a slot.
	MaxQueuedUploadsPerToken int `toml:"max_queued_uploads_per_token"`
	// UploadQueueTimeout refuses an upload that waited this long for a slot.
	UploadQueueTimeout Duration `toml:"upload_queue_timeout"`
	// UploadTimeout is how long any upload may take; past it, an upload
	// must average UploadMinRate.
	UploadTimeout Duration `toml:"upload_timeout"`
	// UploadMinRate is the minimum average upload rate ("64KiB/s").
	UploadMinRate Rate `toml:"upload_min_rate"`
	// MaxNarSize bounds the NAR an uploaded NAR file decodes to.
	MaxNarSize Size `toml:"max_nar_size"`
	// MaxDecoderMemory bounds the xz dictionary or zstd window an
	// uploaded or pulled NAR file may declare.
	MaxDecoderMemory Size `toml:"max_decoder_memory"`
	// MaxListingSize bounds the .ls listing built for a NAR; a NAR with a
	// larger listing is accepted without one.
	MaxListingSize Size `toml:"max_listing_size"`
	// MemoryLimit is the server's soft memory limit (Go's GOMEMLIMIT):
	// past it the garbage collector works harder rather than the heap
	// growing. 0 is the default, 192MiB; GOMEMLIMIT in the environment
	// wins.
	MemoryLimit Size `toml:"memory_limit"`
	// UploadStallTimeout aborts an upload that sends nothing for this long.
	UploadStallTimeout Duration `toml:"upload_stall_timeout"`
	// NarInfoCacheEntries bounds the in-memory narinfo cache.
	NarInfoCacheEntries int `toml:"narinfo_cache_entries"`
	// IndexInterval is how often the server updates the package catalog
	// and its search index ("0": never; see IndexEvery).
	IndexInterval Interval `toml:"index_interval"`
}

// DefaultIndexInterval is [server] index_interval's default.
const DefaultIndexInterval = 30 * time.Second

// IndexEvery is the server's catalog update interval (0: off).
func (s *Server) IndexEvery() time.Duration {
	if !s.IndexInterval.Set {
		return DefaultIndexInterval
	}
	return s.IndexInterval.D
}

// Site configures the static site publish writes under _site/.
type Site struct {
	// BaseURL is where the bucket is served (for the nix.conf lines).
	BaseURL string `toml:"base_url"`
	// ServerURL is where `nixrepo serve` runs (default BaseURL).
	ServerURL string `toml:"server_url"`
	Title     string `toml:"title"`
	// Disabled skips the site.
	Disabled bool `toml:"disabled"`
	// Repos lists the repositories the site shows (default: every public
	// one). A repository that is not public needs IncludePrivate.
	Repos []string `toml:"repos"`
	// IncludePrivate puts repositories that are not public on the site
	// too (their packages, versions and store paths). Off by default: the
	// site is meant for anyone who can reach the bucket.
	IncludePrivate bool `toml:"include_private"`
}

// Search bounds the queries of `nixrepo search` and the server's search
// API (0 = the default of package search).
type Search struct {
	// MaxQueryLength is the longest query in characters (default 256).
	MaxQueryLength int `toml:"max_query_length"`
	// MaxTerms is the most words a query may have (default 16).
	MaxTerms int `toml:"max_terms"`
}

// Token is one [[token]] table: a credential for uploads and private reads.
// Only the token's SHA-256 is stored.
type Token struct {
	Name   string   `toml:"name"`
	SHA256 string   `toml:"sha256"`
	Read   []string `toml:"read"`  // repository names, or "*"
	Write  []string `toml:"write"` // repository names, or "*"; write implies read
}

// Repo is one [[repo]] table.
type Repo struct {
	Name string `toml:"name"`
	Type string `toml:"type"`
	// Priority is served in nix-cache-info (lower is preferred by Nix).
	Priority int `toml:"priority"`
	// Description is shown to people (setmeup, the site).
	Description string `toml:"description"`
	// SigningKeyFile holds the repo's secret key in Nix's format.
	SigningKeyFile string `toml:"signing_key_file"`
	// GenerateKey creates SigningKeyFile on first use when it does not exist.
	// Meant for demos and first runs; production configs leave it false so a
	// wrong path is an error rather than a new key.
	GenerateKey bool `toml:"generate_key"`
	// Incoming lists binary caches (folders or gocloud URLs) that `nixrepo run`
	// ingests into this repo.
	Incoming []string `toml:"incoming"`
	// Upstream is the binary cache a remote repository mirrors.
	Upstream string `toml:"upstream"`
	// TrustedKeys verify upstream narinfos of a remote repository.
	TrustedKeys []string `toml:"trusted_keys"`
	// ChannelsUpstream serves the channels a remote repository mirrors
	// (channels.nixos.org's layout: /<channel> redirects to a release).
	ChannelsUpstream string `toml:"channels_upstream"`
	// Channels lists upstream channels to mirror ("nixos-25.11", …).
	Channels []string `toml:"channels"`
	// ChannelKeep keeps the newest N snapshots of each channel (0: all).
	// The current snapshot and pinned ones are never deleted.
	ChannelKeep int `toml:"channel_keep"`
	// ChannelPins are snapshots retention never deletes, as "CHANNEL/SNAPSHOT".
	ChannelPins []string `toml:"channel_pins"`
	// NegativeTTL: how long the server remembers that upstream lacks a path.
	NegativeTTL Duration `toml:"negative_ttl"`
	// Members of a virtual repository, resolved in order.
	Members []string `toml:"members"`
	// Public repositories can be read without a token by the server.
	Public bool `toml:"public"`
	// KeepIncoming leaves accepted paths in the incoming sources instead of
	// deleting them after they were ingested.
	KeepIncoming bool `toml:"keep_incoming"`
}

// decodeErrRE matches the decoder's type errors, which carry the line only
// in their text.
var decodeErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

var typeErrRE = regexp.MustCompile(`^incompatible types: TOML value has type (\S+); destination has type (\S+)$`)

func typeMsg(msg string) string {
	if m := typeErrRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("expected %s, got %s", tomlType(m[2]), tomlType(m[1]))
	}
	return msg
}

// tomlType names a decoder's Go type as the TOML value it stands for.
func tomlType(goType string) string {
	switch goType {
	case "int", "int64", "int32", "uint", "uint64", "uint32":
		return "integer"
	case "float64", "float32":
		return "float"
	case "bool":
		return "boolean"
	}
	return goType
}

var repoNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidRepoName reports whether name may name a repository: lower-case
// letters, digits, '.', '_' and '-', starting with a letter or digit, at most
// 63 characters. Names starting with '_' are reserved for nixrepo itself.
func ValidRepoName(name string) bool {
	return repoNameRE.MatchString(name) && !strings.Contains(name, "..")
}

// Error is a configuration problem, located when possible.
type Error struct {
	Source string // file name or "embedded default"
	Line   int    // 0 when unknown
	Key    string // dotted key, e.g. repo[0].priority
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads, strictly decodes and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path, filepath.Dir(abs))
}

// Parse decodes data strictly (an unknown key is an error naming the key and
// its line) and validates it. source names the data in messages; dir is the
// folder relative paths resolve against.
func Parse(data []byte, source, dir string) (*Config, error) {
	c := &Config{Dir: dir, Source: source}
	md, err := toml.NewDecoder(strings.NewReader(string(data))).Decode(c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Source: source, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		}
		if m := decodeErrRE.FindStringSubmatch(err.Error()); m != nil {
			ln, _ := strconv.Atoi(m[1])
			return nil, &Error{Source: source, Line: ln, Key: scanLines(string(data)).keyAt(ln, m[2]), Msg: typeMsg(m[3])}
		}
		return nil, &Error{Source: source, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	lines := scanLines(string(data))
	var errs []error
	used := map[string]bool{}
	for _, k := range md.Undecoded() {
		key, ln := lines.undecoded(k.String(), used)
		errs = append(errs, &Error{Source: source, Line: ln, Key: key, Msg: "unknown key"})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.applyDefaults()
	if err := c.validate(md, lines); err != nil {
		return nil, err
	}
	return c, nil
}

// StoreSchemes are the bucket URL schemes nixrepo has drivers for.
var StoreSchemes = []string{"file", "s3", "gs", "azblob", "mem"}

// DefaultListen is where `nixrepo serve` listens without [server] listen.
// The other [server] settings default in package server (0 = its default).
const DefaultListen = "127.0.0.1:8080"

func (c *Config) applyDefaults() {
	if c.Server.Listen == "" {
		c.Server.Listen = DefaultListen
	}
}

func (c *Config) validate(md toml.MetaData, lines keyLines) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{Source: c.Source, Line: lines.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}

	if !md.IsDefined("version") {
		bad("version", "missing; add `version = %d` at the top", Version)
	} else if c.Version != Version {
		bad("version", "unsupported version %d (this nixrepo reads version %d)", c.Version, Version)
	}
	if c.Store.URL == "" {
		bad("store.url", "missing: the bucket URL holding the repositories")
	} else if u, err := url.Parse(c.Store.URL); err != nil || !strings.Contains(c.Store.URL, "://") {
		bad("store.url", "%q is not a URL like file://./var/store or s3://bucket", c.Store.URL)
	} else if !slices.Contains(StoreSchemes, u.Scheme) {
		bad("store.url", "%q: nixrepo opens %s:// buckets, not %s:// (to publish over HTTP, serve the bucket with a static file server or nixrepo serve)",
			c.Store.URL, strings.Join(StoreSchemes, "://, "), u.Scheme)
	}
	if c.Ingest.Workers < 0 {
		bad("ingest.workers", "must be ≥ 0 (0 = one per CPU)")
	}
	if (c.Server.TLSCertFile == "") != (c.Server.TLSKeyFile == "") {
		bad("server.tls_cert_file", "set both tls_cert_file and tls_key_file, or neither")
	}
	if c.Server.MaxObjectSize < 0 {
		bad("server.max_object_size", "must be positive")
	}
	if c.Server.MaxUploads < 0 {
		bad("server.max_uploads", "must be ≥ 1")
	}
	for _, v := range []struct {
		key string
		n   int
	}{{"max_uploads_per_token", c.Server.MaxUploadsPerToken}, {"max_uploads_per_repo", c.Server.MaxUploadsPerRepo}} {
		switch {
		case v.n < 0:
			bad("server."+v.key, "must be ≥ 1")
		case c.Server.MaxUploads > 0 && v.n > c.Server.MaxUploads:
			bad("server."+v.key, "%d is more than max_uploads (%d)", v.n, c.Server.MaxUploads)
		}
	}
	if c.Server.MaxQueuedUploadsPerToken < 0 {
		bad("server.max_queued_uploads_per_token", "must be ≥ 1")
	}
	if c.Server.UploadMinRate < 0 {
		bad("server.upload_min_rate", "must be positive")
	}
	if c.Site.ServerURL != "" {
		if u, err := url.Parse(c.Site.ServerURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			bad("site.server_url", "%q is not an http(s) URL like https://nix.example.org (no credentials, query or fragment)", c.Site.ServerURL)
		}
	}
	if c.Server.MaxNarSize < 0 {
		bad("server.max_nar_size", "must be positive")
	}
	if c.Server.MaxDecoderMemory < 0 || (c.Server.MaxDecoderMemory > 0 && c.Server.MaxDecoderMemory < 1<<20) {
		bad("server.max_decoder_memory", "must be at least 1MiB (xz -6 needs 8MiB, xz -9 64MiB)")
	}
	if c.Server.MemoryLimit < 0 || (c.Server.MemoryLimit > 0 && c.Server.MemoryLimit < 64<<20) {
		bad("server.memory_limit", "must be at least 64MiB (0: the default, 192MiB)")
	}
	if c.Server.MaxListingSize < 0 || c.Server.MaxListingSize > 1<<30 {
		bad("server.max_listing_size", "must be between 0 (the default, 16MiB) and 1GiB")
	}
	if d := c.Server.IndexInterval.D; d != 0 && (d < time.Second || d > 24*time.Hour) {
		bad("server.index_interval", "must be 0 (off) or between 1s and 24h")
	}
	if c.Server.NarInfoCacheEntries < 0 {
		bad("server.narinfo_cache_entries", "must be ≥ 0")
	}
	if c.Channels.MaxTarballEntries < 0 {
		bad("channels.max_tarball_entries", "must be ≥ 0 (0 = the default)")
	}
	if c.Channels.MaxTarballUnpackedSize < 0 {
		bad("channels.max_tarball_unpacked_size", "must be ≥ 0 (0 = the default)")
	}
	if c.Channels.MaxTarballSize < 0 {
		bad("channels.max_tarball_size", "must be ≥ 0 (0 = the default)")
	}
	if c.Channels.MaxConcurrentUnpacks < 0 {
		bad("channels.max_concurrent_unpacks", "must be ≥ 0 (0 = the default)")
	}
	if len(c.Repos) == 0 {
		bad("repo", "no [[repo]] table: configure at least one repository")
	}
	seen := map[string]bool{}
	for i := range c.Repos {
		r := &c.Repos[i]
		key := func(k string) string { return fmt.Sprintf("repo[%d].%s", i, k) }
		switch {
		case r.Name == "":
			bad(key("name"), "missing")
		case !ValidRepoName(r.Name):
			bad(key("name"), "%q is not a valid repository name (lower-case letters, digits, '.', '_', '-'; starting with a letter or digit; ≤ 63 characters)", r.Name)
		case seen[r.Name]:
			bad(key("name"), "repository %q is configured twice", r.Name)
		}
		seen[r.Name] = true
		switch r.Type {
		case TypeLocal:
			if r.SigningKeyFile == "" {
				bad(key("signing_key_file"), "missing: a local repository signs what it accepts (create one with `nixrepo keygen`)")
			}
			if r.Upstream != "" || len(r.Channels) > 0 {
				bad(key("type"), "upstream and channels are for type = \"remote\"")
			}
		case TypeRemote:
			if r.Upstream == "" {
				r.Upstream = DefaultUpstream
			}
			if r.Upstream == DefaultUpstream && len(r.TrustedKeys) == 0 {
				r.TrustedKeys = []string{CacheNixosOrgKey}
			}
			for _, k := range r.TrustedKeys {
				if _, err := nix.ParsePublicKey(k); err != nil {
					bad(key("trusted_keys"), "%q: %v", k, err)
				}
			}
			if r.ChannelsUpstream == "" {
				r.ChannelsUpstream = DefaultChannelsUpstream
			}
			for _, u := range []struct{ k, v string }{{"upstream", r.Upstream}, {"channels_upstream", r.ChannelsUpstream}} {
				if pu, err := url.Parse(u.v); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
					bad(key(u.k), "%q is not an http(s) URL", u.v)
				}
			}
			for _, c := range r.Channels {
				if !nix.ValidChannelName(c) {
					bad(key("channels"), "%q is not a valid channel name", c)
				}
			}
		case TypeVirtual:
			if len(r.Members) == 0 {
				bad(key("members"), "a virtual repository needs members (local or remote repositories, in lookup order)")
			}
		case "":
			bad(key("type"), "missing (one of: local, remote, virtual)")
		default:
			bad(key("type"), "unknown repository type %q (one of: local, remote, virtual)", r.Type)
		}
		if r.Type != TypeVirtual && len(r.Members) > 0 {
			bad(key("members"), "only a virtual repository has members")
		}
		if r.ChannelKeep < 0 {
			bad(key("channel_keep"), "must be ≥ 0 (0 keeps every snapshot)")
		}
		for _, p := range r.ChannelPins {
			c, snap, ok := strings.Cut(p, "/")
			if !ok || !nix.ValidChannelName(c) || !nix.ValidChannelName(snap) {
				bad(key("channel_pins"), "%q is not CHANNEL/SNAPSHOT", p)
			}
		}
		if r.Priority < 0 {
			bad(key("priority"), "must be ≥ 0")
		}
		for j, in := range r.Incoming {
			if in == "" {
				bad(key("incoming"), "entry %d is empty", j)
			}
		}
		if len(r.Incoming) > 0 && (r.Type == TypeRemote || r.Type == TypeVirtual) {
			bad(key("incoming"), "%v", r.IngestError())
		}
	}
	repoNames := map[string]bool{"*": true}
	byName := map[string]*Repo{}
	for i := range c.Repos {
		repoNames[c.Repos[i].Name] = true
		byName[c.Repos[i].Name] = &c.Repos[i]
	}
	for i, r := range c.Repos {
		for _, m := range r.Members {
			mr, ok := byName[m]
			switch {
			case !ok:
				bad(fmt.Sprintf("repo[%d].members", i), "no repository %q", m)
			case mr.Type == TypeVirtual:
				bad(fmt.Sprintf("repo[%d].members", i), "member %q is virtual; members are local or remote repositories", m)
			case r.Public && !mr.Public:
				// Reading a virtual repository reads its members: a
				// public one would serve a private member to anyone.
				bad(fmt.Sprintf("repo[%d].public", i), "virtual repository %s is public but its member %s is not: make %s public or %s private", r.Name, m, m, r.Name)
			}
		}
	}
	for i, name := range c.Site.Repos {
		key := fmt.Sprintf("site.repos[%d]", i)
		if r, ok := byName[name]; !ok {
			bad(key, "no repository %q", name)
		} else if !r.Public && !c.Site.IncludePrivate {
			bad(key, "repository %s is not public: the site would show its packages and store paths to anyone; set [site] include_private = true to publish them", name)
		}
	}
	if c.Search.MaxQueryLength < 0 {
		bad("search.max_query_length", "must be ≥ 0 (0 = 256 characters)")
	}
	if c.Search.MaxTerms < 0 {
		bad("search.max_terms", "must be ≥ 0 (0 = 16 words)")
	}
	tokenNames := map[string]bool{}
	for i, tk := range c.Tokens {
		key := func(k string) string { return fmt.Sprintf("token[%d].%s", i, k) }
		if tk.Name == "" {
			bad(key("name"), "missing")
		} else if tokenNames[tk.Name] {
			bad(key("name"), "token %q is configured twice", tk.Name)
		}
		tokenNames[tk.Name] = true
		if !sha256HexRE.MatchString(tk.SHA256) {
			bad(key("sha256"), "want the 64-character hex SHA-256 of the token (`nixrepo token new %s` prints it)", tk.Name)
		}
		for _, list := range []struct {
			k     string
			names []string
		}{{"read", tk.Read}, {"write", tk.Write}} {
			for _, n := range list.names {
				if !repoNames[n] {
					bad(key(list.k), "no repository %q", n)
				}
			}
		}
		// Reading a virtual repository needs read access to each member
		// it serves from (the server checks both): a grant of the
		// virtual one alone would be refused.
		mayRead := func(n string) bool {
			return slices.Contains(tk.Read, "*") || slices.Contains(tk.Write, "*") ||
				slices.Contains(tk.Read, n) || slices.Contains(tk.Write, n) || byName[n].Public
		}
		for _, n := range tk.Read {
			r, ok := byName[n]
			if !ok || r.Type != TypeVirtual {
				continue
			}
			for _, m := range r.Members {
				if _, ok := byName[m]; ok && !mayRead(m) {
					bad(key("read"), "token %s may read virtual repository %s but not its member %s: add %s to read (reading %s serves %s's paths)", tk.Name, n, m, m, n, m)
				}
			}
		}
		for _, n := range tk.Write {
			if r, ok := byName[n]; ok && r.Type == TypeVirtual {
				bad(key("write"), "%s is a virtual repository, which takes no uploads: grant write on a local repository", n)
			}
		}
	}
	return errors.Join(errs...)
}

var sha256HexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// IngestError says why paths cannot be ingested into r (nil for a local
// repository): a remote repository is filled from its upstream (pulled
// through by the server, or `nixrepo mirror paths`), a virtual one from
// its members by `nixrepo publish`. Only a local repository has the key
// ingest signs with.
func (r *Repo) IngestError() error {
	switch r.Type {
	case TypeLocal:
		return nil
	case TypeVirtual:
		return fmt.Errorf("repository %s is a virtual repository: ingest into a local repository (publish fills %s from its members)", r.Name, r.Name)
	case TypeRemote:
		return fmt.Errorf("repository %s is a remote repository: ingest into a local repository (nixrepo mirror paths fills %s from its upstream)", r.Name, r.Name)
	}
	return fmt.Errorf("repository %s is of type %q: ingest into a local repository", r.Name, r.Type)
}

// ChannelPushError says why channel snapshots cannot be pushed to r (nil
// for a local or remote repository): a virtual repository serves its
// members' paths and has no channels of its own.
func (r *Repo) ChannelPushError() error {
	if r.Type == TypeVirtual {
		return fmt.Errorf("repository %s is a virtual repository: push channels to a local repository", r.Name)
	}
	return nil
}

// SiteRepos is the set of repositories the static site shows: [site]
// repos when set, else every public repository, or every repository with
// [site] include_private.
func (c *Config) SiteRepos() []string {
	if len(c.Site.Repos) > 0 {
		return slices.Clone(c.Site.Repos)
	}
	names := []string{}
	for _, r := range c.Repos {
		if r.Public || c.Site.IncludePrivate {
			names = append(names, r.Name)
		}
	}
	return names
}

// Repo returns the repository called name.
func (c *Config) Repo(name string) (*Repo, error) {
	for i := range c.Repos {
		if c.Repos[i].Name == name {
			return &c.Repos[i], nil
		}
	}
	names := make([]string, len(c.Repos))
	for i, r := range c.Repos {
		names[i] = r.Name
	}
	return nil, fmt.Errorf("no repository %q in %s (configured: %s)", name, c.Source, strings.Join(names, ", "))
}

// Path resolves a file path from the config against the config's folder.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// PublicServerURL is where clients reach `nixrepo serve`, without a
// trailing slash: [site] server_url, else base_url when that is an
// http(s) URL (the site assumes the same); "" when neither says.
func (c *Config) PublicServerURL() string {
	if c.Site.ServerURL != "" {
		return strings.TrimRight(c.Site.ServerURL, "/")
	}
	if u, err := url.Parse(c.Site.BaseURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.User == nil && u.RawQuery == "" && u.Fragment == "" {
		return strings.TrimRight(c.Site.BaseURL, "/")
	}
	return ""
}

// Workers is the effective ingest parallelism.
func (c *Config) Workers() int {
	if c.Ingest.Workers > 0 {
		return c.Ingest.Workers
	}
	return runtime.GOMAXPROCS(0)
}
