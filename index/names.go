package index

// This file reimplements Nix's names.cc (DrvName::DrvName, nextComponent,
// componentsLT, compareVersions) and primops.cc (prim_splitVersion),
// unchanged from Nix 2.8 to current Nix and in Lix. All character classes
// are those of the C locale and work on bytes: only A-Z and a-z are letters
// and only 0-9 are digits, so every non-ASCII byte (each byte of a UTF-8
// sequence) is neither. Version comparison lives in package nix (channel
// snapshots are ordered by it too); this package re-exports it.

import "github.com/nixrepo/nixrepo/internal/nix"

// SplitName behaves exactly like builtins.parseDrvName: the name is split
// at the first '-' that is followed by a character that is not an ASCII
// letter (a digit, but also '.', '_', '+', '-', '=', '?' or a non-ASCII
// byte). pname is everything before that '-' and version everything after
// it. Without such a '-' the whole name is pname and version is "" (so a
// trailing '-' never splits: "foo-" gives ("foo-", "")).
//
//	SplitName("hello-2.12.1")         // "hello", "2.12.1"
//	SplitName("openssl-3.0.8-dev")    // "openssl", "3.0.8-dev" (the output stays in the version)
//	SplitName("font-bh-100dpi-1.0.3") // "font-bh", "100dpi-1.0.3"
//	SplitName("foo-a1")               // "foo-a1", ""
//	SplitName("foo--1")               // "foo", "-1"
//
// Whenever version != "", pname + "-" + version == name. SplitName does not
// allocate.
func SplitName(name string) (pname, version string) {
	for i := 0; i+1 < len(name); i++ {
		if name[i] == '-' && !isAlpha(name[i+1]) {
			return name[:i], name[i+1:]
		}
	}
	return name, ""
}

// CompareVersions behaves exactly like builtins.compareVersions: -1, 0 or
// 1. The implementation is nix.CompareVersions (the ordering also decides
// which channel snapshot is newer); nix_test.go checks it against Nix.
func CompareVersions(a, b string) int { return nix.CompareVersions(a, b) }

// SplitVersion behaves like builtins.splitVersion (see nix.SplitVersion).
func SplitVersion(v string) []string { return nix.SplitVersion(v) }

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
