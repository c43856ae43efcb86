package nix

// Version comparison with Nix's exact semantics (names.cc). package index
// re-exports these and checks them against the real nix-instantiate.

// CompareVersions behaves exactly like builtins.compareVersions: it returns
// -1 when a is older than b, 0 when they are equivalent and 1 when a is
// newer. nix-env -u and nix-env -i pick the newest version by this order.
//
// Both strings are cut into components (see SplitVersion) which are
// compared pairwise from the left, a missing component counting as "".
// Component c1 is less than c2 when, in this order of precedence:
//
//  1. both are numbers (all digits, value at most 2147483647 = 2^31-1;
//     leading zeros allowed) and c1 < c2 numerically;
//  2. c1 is "" and c2 is such a number ("1.0" < "1.0.0");
//  3. c1 is "pre" and c2 is not ("1.0pre1" < "1.0", "1.0.pre" < "1.0");
//  4. otherwise never when c2 is "pre";
//  5. c2 is a number and c1 is not ("1.0a" < "1.0.1", "1.a" < "1.0");
//  6. otherwise never when c1 is a number;
//  7. otherwise c1 < c2 bytewise ("1.0" < "1.0a", "1.0B" < "1.0a",
//     "1.0rc1" > "1.0": only "pre" is special).
//
// Consequences worth knowing: "1.01" == "1.1", "2023-01-01" == "2023.1.1",
// "1..0" == "1.0-" == "1.0", "1a" == "1-a" == "1.a"; and a digit run above
// 2^31-1 is not a number but a string, so it is older than every number and
// compares bytewise with other strings: "2147483648" < "3",
// "20231129123456" < "1", "10000000000" < "9999999999".
//
// CompareVersions does not allocate.
func CompareVersions(a, b string) int {
	p1, p2 := 0, 0
	for p1 < len(a) || p2 < len(b) {
		var c1, c2 string
		c1, p1 = nextComponent(a, p1)
		c2, p2 = nextComponent(b, p2)
		n1, ok1 := componentInt(c1)
		n2, ok2 := componentInt(c2)
		if componentsLT(c1, c2, n1, n2, ok1, ok2) {
			return -1
		}
		if componentsLT(c2, c1, n2, n1, ok2, ok1) {
			return 1
		}
	}
	return 0
}

// SplitVersion behaves like builtins.splitVersion: it returns the
// components CompareVersions compares. Runs of '.' and '-' separate
// components and are dropped; a component is either a maximal run of ASCII
// digits or a maximal run of other bytes that are not '.' or '-', so a
// digit/non-digit boundary also separates ("1.0rc1" → 1 0 rc 1, "1_2" →
// 1 _ 2). The result is nil when v has no component ("", "-", "..").
func SplitVersion(v string) []string {
	n := 0
	for p := 0; ; n++ {
		var c string
		if c, p = nextComponent(v, p); c == "" {
			break
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for p := 0; ; {
		var c string
		if c, p = nextComponent(v, p); c == "" {
			break
		}
		out = append(out, c)
	}
	return out
}

// nextComponent is names.cc (nextComponent): skip separators from p, then
// take the longest run of digits or of non-digit non-separators. It returns
// "" only at the end of s, and the position after the component.
func nextComponent(s string, p int) (string, int) {
	for p < len(s) && isSep(s[p]) {
		p++
	}
	start := p
	if p < len(s) && isDigit(s[p]) {
		for p < len(s) && isDigit(s[p]) {
			p++
		}
	} else {
		for p < len(s) && !isDigit(s[p]) && !isSep(s[p]) {
			p++
		}
	}
	return s[start:p], p
}

// componentInt is Nix's string2Int<int> (boost::lexical_cast<int>) applied
// to a component: ok when c is a non-empty run of digits whose value fits a
// signed 32-bit int; leading zeros are accepted.
func componentInt(c string) (n int32, ok bool) {
	if c == "" {
		return 0, false
	}
	var v int64
	for i := 0; i < len(c); i++ {
		d := c[i]
		if !isDigit(d) {
			return 0, false
		}
		v = v*10 + int64(d-'0')
		if v > 1<<31-1 {
			return 0, false
		}
	}
	return int32(v), true
}

// componentsLT is names.cc (componentsLT) with the string2Int<int> results
// of both components precomputed.
func componentsLT(c1, c2 string, n1, n2 int32, ok1, ok2 bool) bool {
	switch {
	case ok1 && ok2:
		return n1 < n2
	case c1 == "" && ok2:
		return true
	case c1 == "pre" && c2 != "pre":
		return true
	case c2 == "pre":
		return false
	case ok2: // "2.3a" < "2.3.1"
		return true
	case ok1:
		return false
	default:
		return c1 < c2
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isSep(c byte) bool   { return c == '.' || c == '-' }
