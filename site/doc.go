// Package site renders the static web site of a package catalog: a home
// page with the repositories and a search box, an alphabetical package list
// (paginated), one page per package (every version with its outputs, sizes,
// store paths, repositories and channel snapshots), a channels page and a
// Set-Me-Up page per repository.
//
// The site is plain files with relative links, so any static file server
// serves it from any folder (nixrepo publish writes it under the bucket's
// reserved prefix "_site/"). Every page is readable without JavaScript;
// only the search box needs it. Search works without a server: the
// catalog's names are prebuilt into sharded JSON under search/ (a small
// manifest, prefix shards of at most Options.ShardSize packages, and one
// compact name list per first letter), which assets/search.js loads
// lazily: the query's prefix shard first (exact and prefix matches), then
// the name lists for substring and fuzzy matches. A page URL with ?q=TERM
// runs a query on load.
//
// Options.Repos restricts a site to some repositories (the command layer
// passes the public ones unless configured otherwise): the catalog is cut
// down before rendering, so no file has a package, version, store path or
// channel found only elsewhere.
//
// Everything is rendered with html/template from embedded templates and
// assets: no CDN, no external fonts or scripts. Output is deterministic: the
// same catalog and options give the same bytes, so a publisher can skip
// unchanged files.
package site
