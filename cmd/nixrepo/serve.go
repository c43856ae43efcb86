package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/config"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/search"
	"github.com/nixrepo/nixrepo/server"
)

func newServeCmd(a *app) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the repositories over HTTP and accept authenticated uploads",
		Long: `serve runs the HTTP server. Each repository R is served at /api/nix/R/ as a Nix
binary cache (GET/HEAD) and accepts uploads from "nix copy --to" (PUT) with a
token of the [[token]] tables as the HTTP Basic password:

  nix copy --to 'https://ci:TOKEN@host/api/upload/R' ./result

(/api/upload/R serves the same routes: an uploader's Nix then keeps its cache
of the unsigned narinfos it sent apart from the signed ones at /api/nix/R.)
Uploads go through the same verification as "nixrepo ingest" and are signed
with the repository key, so /api/nix/R substitutes them the moment the
narinfo upload returns. Also: /healthz, Prometheus /metrics, the search API,
and the static site at / (what publish writes under _site/) unless the
site is disabled or shows private repositories ([site] include_private).
Configuration: [server] (listen, tls_cert_file, tls_key_file,
max_object_size, max_uploads, max_uploads_per_token, max_uploads_per_repo,
max_queued_uploads_per_token, upload_queue_timeout, upload_timeout,
upload_min_rate, upload_stall_timeout, narinfo_cache_entries, max_nar_size,
max_decoder_memory, max_listing_size, memory_limit, index_interval), [[token]], public = true on a
repository for anonymous reads, [channels] (max_tarball_entries,
max_tarball_unpacked_size, max_tarball_size, max_concurrent_unpacks), and [site] server_url (the server's public
URL, named in channel redirects' Link header).

Every [server] index_interval (default 30s; "0" turns it off) the server
updates the package catalog and its search index in the background, as
"nixrepo index" does, so a path uploaded to any replica sharing the bucket
(or ingested by a run) is found by /api/search here within about that
interval. The search index is the folder "nixrepo index" uses
($NIXREPO_INDEX_DIR, else var/index next to the configuration).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Server.Listen = listen
			}
			setServerMemory(cfg)
			srv, st, err := a.newServer(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			return a.listenAndServe(cmd.Context(), cfg, srv)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (overrides [server] listen)")
	return cmd
}

// newServer maps the configuration to server options.
func (a *app) newServer(ctx context.Context, cfg *config.Config) (*server.Server, interface{ Close() error }, error) {
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	opts := &server.Options{
		MaxObjectSize:            int64(cfg.Server.MaxObjectSize),
		MaxUploads:               cfg.Server.MaxUploads,
		MaxUploadsPerToken:       cfg.Server.MaxUploadsPerToken,
		MaxUploadsPerRepo:        cfg.Server.MaxUploadsPerRepo,
		MaxQueuedUploadsPerToken: cfg.Server.MaxQueuedUploadsPerToken,
		UploadQueueTimeout:       time.Duration(cfg.Server.UploadQueueTimeout),
		UploadTimeout:            time.Duration(cfg.Server.UploadTimeout),
		UploadMinRate:            int64(cfg.Server.UploadMinRate),
		MaxNarSize:               int64(cfg.Server.MaxNarSize),
		MaxDecoderMemory:         int64(cfg.Server.MaxDecoderMemory),
		MaxListingSize:           int(cfg.Server.MaxListingSize),
		UploadStallTimeout:       time.Duration(cfg.Server.UploadStallTimeout),
		NarInfoCacheEntries:      cfg.Server.NarInfoCacheEntries,
		ChannelTarball:           tarballLimits(cfg),
		MaxConcurrentUnpacks:     cfg.Channels.MaxConcurrentUnpacks,
		PublicURL:                cfg.PublicServerURL(),
		Logger:                   slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	for i := range cfg.Repos {
		r := &cfg.Repos[i]
		sr := server.Repo{Name: r.Name, Priority: r.Priority, Public: r.Public, ChannelKeep: r.ChannelKeep, ChannelPins: r.ChannelPins,
			Members: r.Members, NegativeTTL: time.Duration(r.NegativeTTL)}
		if r.Type == config.TypeRemote {
			if sr.Upstream, err = upstreamOf(r); err != nil {
				st.Close()
				return nil, nil, err
			}
			sr.Upstream.Limits = ingest.Limits{MaxDecoderMemory: opts.MaxDecoderMemory, MaxListing: opts.MaxListingSize}
		}
		if r.SigningKeyFile != "" {
			if sr.Key, err = a.loadSigningKey(cfg, r); err != nil {
				st.Close()
				return nil, nil, err
			}
		}
		opts.Repos = append(opts.Repos, sr)
	}
	for _, t := range cfg.Tokens {
		var h [32]byte
		b, _ := hex.DecodeString(t.SHA256) // validated by config
		copy(h[:], b)
		opts.Tokens = append(opts.Tokens, server.Token{Name: t.Name, SHA256: h, Read: t.Read, Write: t.Write})
	}
	dir := a.indexDir(cfg, "")
	opts.Search = search.NewEngine(st, dir)
	if every := cfg.Server.IndexEvery(); every > 0 {
		opts.Catalog = &server.CatalogUpdate{
			Repos:    catalogRepos(cfg),
			Interval: every,
			// Few parallel reads: the update must not crowd out uploads.
			Options: &index.BuildOptions{IndexDir: dir, Workers: 4, Logger: opts.Logger},
		}
	}
	opts.SearchLimits = searchLimits(cfg)
	// The site at "/" for anyone, unless it shows private repositories
	// (include_private): those pages are left to static hosting with its
	// own access control.
	opts.Site = !cfg.Site.Disabled && !cfg.Site.IncludePrivate
	srv, err := server.New(st, opts)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return srv, st, nil
}

func (a *app) listenAndServe(ctx context.Context, cfg *config.Config, h *server.Server) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	scheme := "http"
	if cfg.Server.TLSCertFile != "" {
		scheme = "https"
	}
	fmt.Fprintf(a.stderr, "nixrepo: serving %d repositories at %s://%s/api/nix/<repo>\n", len(cfg.Repos), scheme, ln.Addr())
	errc := make(chan error, 1)
	go func() {
		if scheme == "https" {
			errc <- h.ServeTLS(ln, hs, cfg.Path(cfg.Server.TLSCertFile), cfg.Path(cfg.Server.TLSKeyFile))
		} else {
			errc <- h.Serve(ln, hs)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := hs.Shutdown(shutdownCtx)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// upstreamOf is the upstream binary cache of a remote repository.
func upstreamOf(r *config.Repo) (*ingest.Upstream, error) {
	var keys []nix.PublicKey
	for _, k := range r.TrustedKeys {
		pk, err := nix.ParsePublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("repository %s: trusted key %q: %w", r.Name, k, err)
		}
		keys = append(keys, pk)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("repository %s: a remote repository needs trusted_keys to verify %s", r.Name, r.Upstream)
	}
	return ingest.NewUpstream(r.Upstream, keys), nil
}

// defaultMemoryLimit is the server's soft memory limit unless configured.
const defaultMemoryLimit = 192 << 20

// setServerMemory tunes the garbage collector for serving: the live heap
// is small (caches) and requests allocate, so the heap may grow to five
// times the live heap between collections (GOGC=400) — but never past the
// soft memory limit ([server] memory_limit), where the collector runs
// sooner instead. Hostile uploads make garbage fast (a listing built to
// its cap and dropped, decoder windows); without the limit the heap goal
// alone let the server grow by 300 MiB under bench/hostile.sh. GOGC and
// GOMEMLIMIT in the environment win.
func setServerMemory(cfg *config.Config) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		limit := int64(cfg.Server.MemoryLimit)
		if limit == 0 {
			limit = defaultMemoryLimit
		}
		debug.SetMemoryLimit(limit)
	}
}
