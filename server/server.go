package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/ingest/channel"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/search"
)

// Repo is a repository the server exposes.
type Repo struct {
	Name     string
	Priority int
	// Public repositories are readable without credentials.
	Public bool
	// Key signs uploaded paths; uploads are refused without one.
	Key nix.SecretKey
	// ChannelKeep and ChannelPins are the channel retention settings.
	ChannelKeep int
	ChannelPins []string
	// Upstream makes the repository a remote one: misses are pulled through
	// from it (verified by its keys) and stored.
	Upstream *ingest.Upstream
	// NegativeTTL is how long an upstream "not found" is remembered.
	NegativeTTL time.Duration
	// Members make the repository a virtual one: requests resolve against
	// these repositories in order (first hit wins). A virtual repository
	// with a Key re-signs what it serves.
	Members []string
}

// Token is a credential: the SHA-256 of the secret and what it may do.
type Token struct {
	Name   string
	SHA256 [32]byte
	Read   []string // repository names or "*"
	Write  []string // repository names or "*"; write implies read
}

// Options configure a Server. Zero values take the documented defaults.
type Options struct {
	Repos  []Repo
	Tokens []Token
	// MaxObjectSize bounds one upload (default 16 GiB); larger is 413.
	MaxObjectSize int64
	// MaxUploads bounds concurrent uploads (default 16); more wait (see
	// admission.go for the whole admission rule).
	MaxUploads int
	// MaxUploadsPerToken bounds the slots one token holds (default a
	// quarter of MaxUploads, at least 1; all of them when only one token
	// may upload).
	MaxUploadsPerToken int
	// MaxUploadsPerRepo bounds the slots uploads to one repository hold
	// (default half of MaxUploads, at least 1; all of them when only one
	// repository takes uploads).
	MaxUploadsPerRepo int
	// MaxQueuedUploadsPerToken bounds one token's uploads waiting for a
	// slot (default 256); more are refused.
	MaxQueuedUploadsPerToken int
	// UploadQueueTimeout refuses an upload that waited this long for a
	// slot (default 4 minutes: less than the 5 minutes after which Nix's
	// curl gives up on a silent transfer and retries).
	UploadQueueTimeout time.Duration
	// UploadTimeout is how long any upload may take to send its body
	// (default 10 minutes); past it, its average rate must be at least
	// UploadMinRate.
	UploadTimeout time.Duration
	// UploadMinRate in bytes per second (default 64 KiB/s).
	UploadMinRate int64
	// MaxNarSize bounds the NAR an uploaded NAR file decodes to (default
	// ingest.DefaultMaxNarSize, 64 GiB); larger is 413.
	MaxNarSize int64
	// MaxDecoderMemory bounds the window (xz dictionary, zstd window) an
	// uploaded NAR file may declare (default compress.DefaultMaxMemory,
	// 128 MiB); larger is 413.
	MaxDecoderMemory int64
	// MaxListingSize bounds the .ls listing built for an uploaded or
	// pulled NAR (default nar.DefaultMaxListing, 16 MiB); a NAR with a
	// larger listing is accepted without one.
	MaxListingSize int
	// UploadStallTimeout aborts an upload that sends nothing for this long
	// (default 5 minutes).
	UploadStallTimeout time.Duration
	// PublicURL is where clients reach the server ("https://nix.example.org",
	// no trailing slash). Channel redirects name it in their Link header
	// (Nix records that URL in flake.lock, so it must be absolute); without
	// it they carry no Link. Locations are relative either way: the Host
	// header is never echoed.
	PublicURL string
	// NarInfoCacheEntries bounds the narinfo cache (default 65536).
	NarInfoCacheEntries int
	// ChannelTarball bounds what an uploaded channel tarball unpacks to
	// (zero fields: package channel's defaults); past it the upload is 413.
	ChannelTarball channel.TarballLimits
	// MaxConcurrentUnpacks bounds the channel tarballs unpacked at once
	// (default DefaultMaxConcurrentUnpacks), and so the disk their unpack
	// folders take: about that many times ChannelTarball.MaxUnpackedSize.
	// A channel upload whose body has arrived waits for its turn, at most
	// UploadQueueTimeout, keeping its upload slot; then it is refused
	// (400).
	MaxConcurrentUnpacks int
	Logger               *slog.Logger
	// Search, when set, serves GET /api/search and /api/packages/<name>.
	Search SearchBackend
	// SearchLimits bound the queries of the search API (zero fields: the
	// defaults of package search, 256 characters and 16 words).
	SearchLimits search.Limits
	// JournalFlushInterval is how often Serve writes the path journal
	// notes of uploads and pulls (default 30 s; see docs/layout.md).
	JournalFlushInterval time.Duration
	// Catalog, when set, makes Serve update the package catalog and the
	// search index in the background (see CatalogUpdate).
	Catalog *CatalogUpdate
	// Site serves the static site (what publish writes under _site/) at
	// "/", to anyone: set it only for a site that shows public
	// repositories alone.
	Site bool
}

// DefaultMaxConcurrentUnpacks is Options.MaxConcurrentUnpacks' default: two
// tarballs of channel.DefaultMaxTarballUnpackedSize take at most about 4 GiB
// of the temporary folder at once.
const DefaultMaxConcurrentUnpacks = 2

// Server serves repositories over HTTP under /api/nix/<repo>/ and accepts
// authenticated uploads. It is an adapter: uploads go through package ingest's
// validation and reads serve the same objects static hosting serves.
type Server struct {
	st      *store.Store
	opts    Options
	repos   map[string]*repoState
	tokens  []Token
	log     *slog.Logger
	metrics *metrics
	admit   *admission
	unpacks *admission // channel tarball unpacks
	redact  *redactor
	mux     *http.ServeMux
	bg      sync.WaitGroup
	bgSem   chan struct{}
	// catalogMu: one catalog update at a time.
	catalogMu sync.Mutex
}

type repoState struct {
	Repo
	cache     *store.Cache
	cacheInfo []byte
	narinfos  *lru
	remote    *remoteState // remote repositories
	members   []*repoState // virtual repositories
	// localOnly: a narinfo lookup stays in the bucket (no upstream, also
	// through the members).
	localOnly bool
}

// readOnly repositories take no uploads.
func (r *repoState) readOnly() bool { return r.remote != nil || r.members != nil }

// New builds a server over st.
func New(st *store.Store, opts *Options) (*Server, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.MaxObjectSize <= 0 {
		o.MaxObjectSize = 16 << 30
	}
	if o.MaxUploads <= 0 {
		o.MaxUploads = 16
	}
	if o.UploadStallTimeout <= 0 {
		o.UploadStallTimeout = 5 * time.Minute
	}
	if o.MaxQueuedUploadsPerToken <= 0 {
		o.MaxQueuedUploadsPerToken = 256
	}
	if o.UploadQueueTimeout <= 0 {
		o.UploadQueueTimeout = 4 * time.Minute
	}
	if o.UploadTimeout <= 0 {
		o.UploadTimeout = 10 * time.Minute
	}
	if o.UploadMinRate <= 0 {
		o.UploadMinRate = 64 << 10
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	if o.NarInfoCacheEntries <= 0 {
		o.NarInfoCacheEntries = 65536
	}
	if o.JournalFlushInterval <= 0 {
		o.JournalFlushInterval = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		st:      st,
		opts:    o,
		repos:   map[string]*repoState{},
		tokens:  o.Tokens,
		log:     o.Logger,
		metrics: newMetrics(),
		bgSem:   make(chan struct{}, 4),
		mux:     http.NewServeMux(),
	}
	for _, r := range o.Repos {
		if _, dup := s.repos[r.Name]; dup {
			return nil, fmt.Errorf("server: repository %q configured twice", r.Name)
		}
		info := nix.CacheInfo{StoreDir: nix.StoreDir, WantMassQuery: true, Priority: r.Priority}
		rs := &repoState{Repo: r, cache: st.Repo(r.Name), cacheInfo: info.Bytes(), narinfos: newLRU(o.NarInfoCacheEntries)}
		if r.Upstream != nil {
			rs.remote = newRemoteState(r.Upstream, r.NegativeTTL)
		}
		s.repos[r.Name] = rs
	}
	for _, rs := range s.repos {
		for _, m := range rs.Members {
			member, ok := s.repos[m]
			if !ok || len(member.Members) > 0 || m == rs.Name {
				return nil, fmt.Errorf("server: virtual repository %s: member %q is not a local or remote repository", rs.Name, m)
			}
			rs.members = append(rs.members, member)
		}
	}
	uploadRepos := 0
	for _, rs := range s.repos {
		rs.localOnly = rs.remote == nil && !slices.ContainsFunc(rs.members, func(m *repoState) bool { return m.remote != nil })
		if !rs.readOnly() {
			uploadRepos++
		}
	}
	uploadTokens := 0
	for _, t := range o.Tokens {
		if len(t.Write) > 0 {
			uploadTokens++
		}
	}
	// A share cap only matters when there is someone to share with.
	if o.MaxUploadsPerToken <= 0 {
		o.MaxUploadsPerToken = max(1, o.MaxUploads/4)
		if uploadTokens <= 1 {
			o.MaxUploadsPerToken = o.MaxUploads
		}
	}
	if o.MaxUploadsPerRepo <= 0 {
		o.MaxUploadsPerRepo = max(1, o.MaxUploads/2)
		if uploadRepos <= 1 {
			o.MaxUploadsPerRepo = o.MaxUploads
		}
	}
	s.admit = newAdmission(o.MaxUploads, o.MaxUploadsPerToken, o.MaxUploadsPerRepo, o.MaxQueuedUploadsPerToken)
	if o.ChannelTarball.MaxSize <= 0 {
		o.ChannelTarball.MaxSize = channel.DefaultMaxTarballSize
	}
	if o.MaxConcurrentUnpacks <= 0 {
		o.MaxConcurrentUnpacks = DefaultMaxConcurrentUnpacks
	}
	// Fairness is the upload admission's: every waiting unpack holds an
	// upload slot, so at most MaxUploads wait.
	s.unpacks = newAdmission(o.MaxConcurrentUnpacks, o.MaxConcurrentUnpacks, o.MaxConcurrentUnpacks, o.MaxUploads)
	s.opts = o
	s.metrics.uploadSlots(s.admit.counts)
	dirs := []string{os.TempDir()}
	if p, ok := st.LocalPath(store.CacheInfoFile); ok {
		dirs = append(dirs, filepath.Dir(p))
	}
	s.redact = newRedactor(dirs...)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	s.mux.Handle("GET /metrics", s.metrics.handler())
	if o.Search != nil {
		api := s.SearchAPI(o.Search)
		s.mux.Handle("/api/search", api)
		s.mux.Handle("/api/packages/", api)
	}
	if o.Site {
		s.mux.HandleFunc("/", s.serveSite)
	}
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// No response is to be content-sniffed: stored objects are the
	// uploaders' bytes, whatever their type says.
	w.Header()["X-Content-Type-Options"] = hdrNosniff
	// Repository paths are routed here, not by ServeMux: it answers unclean
	// paths ("…/x/..") with a redirect to the cleaned path, which may be
	// another repository's. Unclean paths match no object shape below and
	// get 404 (reads) or 400 (uploads).
	if rest, ok := strings.CutPrefix(r.URL.Path, NixPrefix); ok {
		s.serveNix(w, r, rest)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, UploadPrefix); ok {
		s.serveNix(w, r, rest)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// HashToken is the SHA-256 configs store for a token.
func HashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// NewToken returns a fresh random URL-safe token and its hex SHA-256.
func NewToken() (token, sha256Hex string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = "nxr_" + strings.TrimRight(base64URL(b[:]), "=")
	h := HashToken(token)
	return token, hex.EncodeToString(h[:]), nil
}

// kind is what a request path inside a repository names.
type kind int

const (
	kindUnknown kind = iota
	kindCacheInfo
	kindNarInfo
	kindListing
	kindNar
	kindLog
	kindRealisation
	kindChannel
)

var kindNames = [...]string{"unknown", store.CacheInfoFile, "narinfo", "ls", "nar", "log", "realisation", "channel"}

func (k kind) String() string { return kindNames[k] }

// classify validates a repository-relative path against the known shapes.
func classify(rel string) kind {
	switch {
	case rel == store.CacheInfoFile:
		return kindCacheInfo
	case isNarInfo(rel):
		return kindNarInfo
	case isListing(rel):
		return kindListing
	case strings.HasPrefix(rel, store.NarDir):
		if _, _, ok := ingest.ParseNarName(rel); ok {
			return kindNar
		}
	case strings.HasPrefix(rel, store.LogDir):
		if _, err := nix.ParseStorePathBase(strings.TrimPrefix(rel, store.LogDir)); err == nil {
			return kindLog
		}
	case strings.HasPrefix(rel, store.ChannelsDir):
		return kindChannel
	case strings.HasPrefix(rel, store.RealisationDir):
		if id, ok := store.RealisationID(rel); ok && isRealisationID(id) {
			return kindRealisation
		}
	}
	return kindUnknown
}

func isNarInfo(rel string) bool { _, ok := store.NarInfoHash(rel); return ok }
func isListing(rel string) bool { _, ok := store.ListingHash(rel); return ok }

// isRealisationID matches "sha256:<64 hex>!<output name>".
func isRealisationID(id string) bool {
	h, out, ok := strings.Cut(id, "!")
	if !ok || out == "" || len(out) > 200 {
		return false
	}
	hexPart, ok := strings.CutPrefix(h, "sha256:")
	if !ok || len(hexPart) != 64 {
		return false
	}
	if _, err := hex.DecodeString(hexPart); err != nil {
		return false
	}
	for _, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '+') {
			return false
		}
	}
	return true
}

// NixPrefix is where repository R is served: NixPrefix + R + "/".
const NixPrefix = "/api/nix/"

// UploadPrefix serves every repository again, identically, for uploaders:
// `nix copy --to <UploadPrefix>R` keeps the narinfos it sent (unsigned: the
// server signs them) in Nix's local narinfo cache under that URL, not under
// the one the same machine substitutes from, where they would fail
// require-sigs until the cache entry expires.
const UploadPrefix = "/api/upload/"

// serveNix routes <repo>/<path> under NixPrefix or UploadPrefix.
func (s *Server) serveNix(w http.ResponseWriter, r *http.Request, rest string) {
	start := time.Now()
	rw := statusWriters.Get().(*statusWriter)
	*rw = statusWriter{ResponseWriter: w}
	defer statusWriters.Put(rw)
	name, rel, _ := strings.Cut(rest, "/")
	k := classify(rel)
	defer func() { s.metrics.observe(k, r.Method, rw.status, rw.bytes, time.Since(start)) }()

	// Authorization comes first, for unknown repositories too: a request
	// that may not read a repository learns nothing about it, not even
	// whether it exists (see authorizeHeader).
	repo := s.repos[name]
	write := r.Method == http.MethodPut
	if status, msg := s.authorizeHeader(r.Header.Get("Authorization"), name, repo, write); status != 0 {
		if status == http.StatusUnauthorized {
			rw.Header().Set("WWW-Authenticate", `Basic realm="nixrepo"`)
		}
		if write {
			s.metrics.upload(k, "denied")
		}
		httpError(rw, status, msg)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut:
	default:
		rw.Header().Set("Allow", "GET, HEAD, PUT")
		httpError(rw, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if k == kindUnknown {
		if write {
			s.metrics.upload(k, "refused")
			msg := fmt.Sprintf("%q is not a binary-cache object name (nix-cache-info, <hash>.narinfo, <hash>.ls, nar/<FileHash>.nar[.xz|.zst|.bz2], log/<drv>, realisations/<id>.doi)", rel)
			if strings.HasPrefix(rel, store.NarDir) {
				msg = ingest.NarNameError(rel).Error()
			}
			httpError(rw, http.StatusBadRequest, msg)
			return
		}
		httpError(rw, http.StatusNotFound, "not found")
		return
	}
	if k == kindChannel {
		s.serveChannel(rw, r, repo, rel)
		return
	}
	if write && repo.readOnly() {
		s.metrics.upload(k, "refused")
		rw.Header().Set("Allow", "GET, HEAD")
		httpError(rw, http.StatusMethodNotAllowed, "repository "+repo.Name+" is a remote or virtual repository: upload to a local repository")
		return
	}
	if write {
		s.put(rw, r, repo, k, rel)
		return
	}
	s.get(rw, r, repo, k, rel)
}

// httpError writes a short plain-text reason.
func httpError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// internalError logs err with an id and answers without internal detail.
// A PUT never gets a 5xx (Nix ≤ 2.32 retries PUTs with an empty body and
// hangs), so it gets a 400 with the id instead.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	var b [6]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	s.log.Error("request failed", "id", id, "method", r.Method, "path", r.URL.Path, "err", err)
	if r.Method == http.MethodPut {
		httpError(w, http.StatusBadRequest, "the server could not store this upload (error "+id+" in the server log)")
		return
	}
	httpError(w, http.StatusInternalServerError, "internal error "+id)
}

// statusWriters recycles the per-request wrappers of the read path.
var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

// statusWriter records the status and bytes written, for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps sendfile available through the wrapper.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
