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
