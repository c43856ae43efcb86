// Package publish writes the files derived from what the repositories hold,
// so that the bucket, served by any static file server, is complete: each
// virtual repository materialised as its own prefix, each repository's
// nix-cache-info (StoreDir, WantMassQuery, Priority), and the static site.
// All holds the order these are written in (see Plan), for the publish and
// run commands alike.
//
// Publishing is idempotent and cheap: an object is rewritten only when its
// bytes change, so a CDN in front of the bucket keeps its caches.
package publish
