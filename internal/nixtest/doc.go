// Package nixtest holds helpers for tests that drive the real Nix client (nix, nix-build,
// nix-store; developed against Nix 2.8 single-user as root, no daemon).
//
// A test starts with
//
//	e := nixtest.Require(t)
//
// which skips the test when Nix is not installed, except when the environment variable CI is
// non-empty: there a missing Nix fails the test, so CI never passes by silently skipping.
//
// Every Env is isolated from the caller's and from every other Env's configuration and caches:
// it has its own HOME, XDG_* directories (Nix caches narinfos and nix-cache-info per URL in
// XDG_CACHE_HOME, so a shared cache would make tests lie), its own NIX_CONF_DIR (so
// /etc/nix/nix.conf, /etc/nix/netrc and the keys configured there do not leak in) and NIX_CONFIG
// set to
//
//	experimental-features = nix-command
//	build-users-group =
//	sandbox = false
//	substituters =
//	require-sigs = true
//
// The Nix store itself is the machine's real /nix/store: Build puts its outputs there. Nix
// serialises concurrent builds with its own locks, so tests in many packages may build (even the
// same derivations) at the same time. Two things in Nix 2.8 are NOT safe concurrently, and the
// helpers avoid both:
//
//   - Initialising a fresh store: concurrent first use of a store that has no database yet can
//     fail with "…/nix/var/nix/db/schema' is corrupt". Require therefore runs `nix-store --init`
//     once per process, under a file lock shared by all processes on the machine.
//   - Adding the same path to one store from several `nix copy` runs at once can fail with
//     "not an absolute path: 'nix-archive-1'". Substitute therefore copies into a fresh
//     chroot store per call; never `nix copy --from … --to` the real /nix/store concurrently.
//
// Substitute is the check that a published cache is usable by Nix: it runs `nix copy --from URL`
// into a fresh chroot store with require-sigs on and only the given public keys trusted, so it
// fails unless every path is signed by one of them and matches its NarHash.
//
// Opening a file:// cache, even only to read from it, makes Nix create empty log/ and
// realisations/ folders in it; serve committed fixtures (testdata/sample-cache) with
// httptest.NewServer(http.FileServer(http.Dir(dir))) instead of reading them through file://.
//
// Build outputs are not registered as GC roots; tests must not rely on them surviving a
// concurrent `nix-collect-garbage`.
package nixtest
