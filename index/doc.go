// Package index derives name and version metadata from Nix store paths,
// with exactly the semantics Nix itself uses, and builds the package catalog
// of all repositories (Build, Update: incremental) and its bleve search
// index from the bucket alone. The catalog is kept in the bucket under
// _nixrepo/catalog/; the search index in a local folder, brought up to
// date from the bucket when it is behind (another process updated the
// catalog) and rebuilt when it is missing. Any number of processes may
// build and update one bucket's catalog at once: they take turns through a
// claim in the manifest, changed by compare-and-swap (claim.go,
// docs/concurrency.md).
//
// # Names and versions
//
// SplitName, CompareVersions and SplitVersion reimplement
// builtins.parseDrvName, builtins.compareVersions and builtins.splitVersion
// (Nix names.cc and primops.cc, unchanged from Nix 2.8 to current Nix and
// in Lix) byte for byte, including the corners nobody expects: a name is
// split at the first '-' followed by anything but an ASCII letter; "pre" is
// the only special word in a version ("1.0pre1" < "1.0" < "1.0a" < "1.0.1",
// and "1.0rc1" > "1.0"); '.' and '-' are interchangeable and runs of them
// collapse ("2023-01-01" == "2023.1.1"); leading zeros are ignored; and a
// digit run above 2^31-1 is compared as a string, so it is older than any
// number ("2147483648" < "3"). A differential test (nix_test.go) checks
// well over a thousand generated names and version pairs each against the
// real nix-instantiate.
//
// # Store path entries
//
// ParseEntry turns a store path into an Entry: hash, name, package name
// (pname), version, output and Kind (package, derivation, source, other).
// A store path does not record which output of its derivation it is, so
// the output is recovered from the name: Nix names every output but "out"
// "<derivation name>-<output>", and ParseEntry strips a trailing
// "-<output>" for a list of output names used in nixpkgs when the rest of
// the name still has a version ("openssl-3.0.8-dev" → openssl, 3.0.8, dev).
// Sources and fetched inputs are recognised by name ("source", "-src",
// archive and patch extensions). ParseEntry documents the exact rules and
// their limits.
package index
