package nix

import (
	"regexp"
	"strings"
)

var channelNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$`)

// ValidChannelName reports whether s may name a channel or a channel
// snapshot: what nix-channel accepts as a channel name
// ([A-Za-z0-9_][A-Za-z0-9_.-]*), plus '+', at most 128 characters, and never
// containing "..", so it is always a safe path segment.
func ValidChannelName(s string) bool {
	return channelNameRE.MatchString(s) && !strings.Contains(s, "..")
}

// MaxStorePathsSize bounds a channel's store-paths list as decoded (its
// store-paths.xz, or a list given to mirror paths): 64 MiB, about 900,000
// paths. nixpkgs' lists a few hundred thousand at most (about 70 bytes
// each), so this leaves room for several times that, while what a reader
// keeps of a hostile list (the parsed paths, the catalog's package
// versions) stays in the low hundreds of MB. Everything that decodes such
// a list stops at this size with an error; none reads a truncated list.
const MaxStorePathsSize = 64 << 20
