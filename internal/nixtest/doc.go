// Package nixtest holds helpers for tests that drive the real Nix client (nix, nix-build,
// nix-store; single-user as root, no daemon), and the rule for tests needing any program that
// may not be installed: skip, except under CI, where that fails.
//
// A test starts with
//
//	e := nixtest.Require(t)
//
// which skips the test when the chosen Nix client is not installed, except when the environment
// variable CI is non-empty: there a missing client fails the test, so CI never passes by silently
// skipping. Require logs the client and its version.
//
// # Programs the tests run themselves
//
// The same rule holds for every other program a test needs: RequireTool(t, "xz") returns the
// program's path on the host's PATH, or skips the test, and under CI fails it. RequireTool
// ignores NIXTEST_CLIENT, so a Nix tool it finds is the host's Nix (2.8 on CI machines); the
// tests that call Nix tools that way are differential tests against the host's Nix, and only
// the tests that use Require are run again with Nix 2.26 (.ci/run). Missing is the rule itself,
// for a test support package that finds what it needs in its own way.
//
// # Clients
//
// One client serves a whole test run, chosen by the environment variable NIXTEST_CLIENT (see
// ClientEnv): unset, the Nix on PATH (Debian 12's Nix 2.8 on CI machines); "2.8", the same
// and it must be 2.8.x; "2.26", Debian 13's Nix 2.26 in the chroot that .ci/nix226.sh makes
// under DefaultChroot226; or the path of such a client folder. The chroot client's store is the
// chroot's own /nix/store, separate from the host's, so every Env of a run (Build, CopyTo,
// Substitute, Run) uses the same client and store; HostPath maps a store path to where this
// process reads it. Nix in the chroot must see the folders the tests pass it at the same paths:
// Require checks that the temporary folder (run with TMPDIR under the script's work folder,
// /var/tmp/nixtest) and the working directory are the same folders there.
//
// Where the clients really differ, a test asserts the behaviour of the one it runs with
// e.Version or e.AtLeast("2.26"), and matches Nix's messages with helpers that know every
// client's wording (IsUntrustedSignature), never one client's text.
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
// The Nix store itself is the client's real /nix/store: Build puts its outputs there. Nix
// serialises concurrent builds with its own locks, so tests in many packages may build (even the
// same derivations) at the same time. Two things in Nix 2.8 are NOT safe concurrently, and the
// helpers avoid both:
//
//   - Initialising a fresh store: concurrent first use of a store that has no database yet can
//     fail with "…/nix/var/nix/db/schema' is corrupt". Require therefore runs `nix-store --init`
//     once per process and client, under a file lock shared by all processes on the machine.
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
