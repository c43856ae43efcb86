package nix

// CompareVersions orders versions exactly like builtins.compareVersions
// (Nix's names.cc): -1 when a < b, 0 when equal, 1 when a > b.
func CompareVersions(a, b string) int {
	p1, p2 := 0, 0
	for p1 < len(a) || p2 < len(b) {
		var c1, c2 string
		c1, p1 = nextVersionComponent(a, p1)
		c2, p2 = nextVersionComponent(b, p2)
		if componentLess(c1, c2) {
			return -1
		}
		if componentLess(c2, c1) {
			return 1
		}
	}
	return 0
}

// nextVersionComponent returns the component of s starting at p (after
// skipping '.' and '-') and the position after it: a maximal run of digits,
// or a maximal run of characters that are neither digits nor separators.
func nextVersionComponent(s string, p int) (string, int) {
	for p < len(s) && (s[p] == '.' || s[p] == '-') {
		p++
	}
	if p >= len(s) {
		return "", p
	}
	start := p
	if isDigit(s[p]) {
		for p < len(s) && isDigit(s[p]) {
			p++
		}
	} else {
		for p < len(s) && !isDigit(s[p]) && s[p] != '.' && s[p] != '-' {
			p++
		}
	}
	return s[start:p], p
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// versionInt parses an all-digit component that fits a signed 32-bit int,
// as Nix's string2Int<int> does; other components are not numbers.
func versionInt(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
		if n > 1<<31-1 {
			return 0, false
		}
	}
	return n, true
}

func componentLess(c1, c2 string) bool {
	n1, ok1 := versionInt(c1)
	n2, ok2 := versionInt(c2)
	switch {
	case ok1 && ok2:
		return n1 < n2
	case c1 == "" && ok2:
		return true
	case c1 == "pre" && c2 != "pre":
		return true
	case c2 == "pre":
		return false
	case ok2:
		return true
	case ok1:
		return false
	}
	return c1 < c2
}
