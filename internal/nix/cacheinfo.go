package nix

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// CacheInfo is the content of a binary cache's "nix-cache-info" file.
type CacheInfo struct {
	StoreDir      string // "" when absent; Nix refuses a cache whose StoreDir is not its own
	WantMassQuery bool
	Priority      int // 0 = not set (Nix then uses its default, 50); lower is preferred
}

// ParseCacheInfo parses nix-cache-info with Nix's lenient rules
// (BinaryCacheStore::init): lines split on '\n'; the key runs to the first
// ':' and the value (after it) is trimmed of spaces, tabs, '\r' and '\n', so
// CRLF and "Key:value" are fine; lines without ':' and unknown keys are
// ignored; WantMassQuery is true only for the value "1"; Priority is read
// like C's std::stoi (leading integer, trailing junk ignored). The last
// WantMassQuery or Priority line wins.
//
// Errors: a Priority without a leading integer or outside the int32 range
// (Nix fails with "stoi"), and StoreDir lines that disagree with each other
// (Nix checks every one). ParseCacheInfo does not require StoreDir to be
// StoreDir; callers decide what to do with a foreign store.
func ParseCacheInfo(b []byte) (CacheInfo, error) {
	var c CacheInfo
	storeDirLine := 0
	for i, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.Trim(value, " \t\r\n")
		switch name {
		case "StoreDir":
			if storeDirLine > 0 && value != c.StoreDir {
				return CacheInfo{}, fmt.Errorf("nix-cache-info line %d: StoreDir %q contradicts line %d (%q)", i+1, value, storeDirLine, c.StoreDir)
			}
			c.StoreDir, storeDirLine = value, i+1
		case "WantMassQuery":
			c.WantMassQuery = value == "1"
		case "Priority":
			p, ok := stoi(value)
			if !ok {
				return CacheInfo{}, fmt.Errorf("nix-cache-info line %d: Priority %q is not an integer", i+1, value)
			}
			c.Priority = p
		}
	}
	return c, nil
}

// stoi mimics std::stoi: optional leading whitespace and sign, at least one
// digit, anything after the digits ignored, int32 range.
func stoi(s string) (int, bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	end := 0
	if end < len(s) && (s[end] == '+' || s[end] == '-') {
		end++
	}
	digits := end
	for end < len(s) && '0' <= s[end] && s[end] <= '9' {
		end++
	}
	if end == digits {
		return 0, false
	}
	v, err := strconv.ParseInt(s[:end], 10, 64)
	if err != nil || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, false
	}
	return int(v), true
}

// Bytes renders c the way cache.nixos.org serves it:
// "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n". StoreDir
// defaults to the package's StoreDir; WantMassQuery is written only when
// true and Priority only when non-zero.
func (c CacheInfo) Bytes() []byte {
	dir := c.StoreDir
	if dir == "" {
		dir = StoreDir
	}
	b := make([]byte, 0, 64)
	b = append(b, "StoreDir: "...)
	b = append(b, dir...)
	b = append(b, '\n')
	if c.WantMassQuery {
		b = append(b, "WantMassQuery: 1\n"...)
	}
	if c.Priority != 0 {
		b = append(b, "Priority: "...)
		b = strconv.AppendInt(b, int64(c.Priority), 10)
		b = append(b, '\n')
	}
	return b
}
