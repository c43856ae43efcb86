// Package e2e holds nixrepo's whole-system tests: the nixrepo binary, built
// from this checkout, run as a user runs it (several `nixrepo serve`
// replicas and `nixrepo run` jobs on one bucket), driven over HTTP and by the
// real Nix client, on a folder bucket and on a real S3-compatible server.
// The tests judge by what the bucket holds afterwards, read through the
// store package, not by what any process reported.
//
// The package has no code of its own; its tests may import any project
// package.
package e2e
