package config

import (
	"strconv"
	"strings"
)

// keyLines maps "table.key" (array tables carry their index: "repo[1].name")
// to the line where the key is set, and "table" to its header's line. The
// TOML decoder reports lines only for syntax errors; this recovers them for
// unknown keys and validation errors. It understands the subset of TOML that
// config files use (bare or quoted keys, [table] and [[array]] headers);
// anything it cannot place simply has no line.
type keyLines map[string]int

func scanLines(src string) keyLines {
	m := keyLines{}
	counts := map[string]int{}
	table := ""
	inMultiline := ""
	for i, raw := range strings.Split(src, "\n") {
		ln := i + 1
		line := strings.TrimSpace(raw)
		if inMultiline != "" {
			if strings.Count(line, inMultiline)%2 == 1 {
				inMultiline = ""
			}
			continue
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[["):
			name := normKey(strings.TrimSuffix(strings.TrimSpace(strings.SplitN(line[2:], "]]", 2)[0]), ""))
			table = name + "[" + strconv.Itoa(counts[name]) + "]"
			counts[name]++
			m[table] = ln
		case strings.HasPrefix(line, "["):
			table = normKey(strings.SplitN(line[1:], "]", 2)[0])
			m[table] = ln
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			key := normKey(k)
			if table != "" {
				key = table + "." + key
			}
			if _, dup := m[key]; !dup {
				m[key] = ln
			}
			v = strings.TrimSpace(v)
			for _, q := range []string{`"""`, `'''`} {
				if strings.HasPrefix(v, q) && strings.Count(v, q) == 1 {
					inMultiline = q
				}
			}
		}
	}
	return m
}

func normKey(k string) string {
	parts := strings.Split(strings.TrimSpace(k), ".")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		p = strings.Trim(p, `"'`)
		parts[i] = p
	}
	return strings.Join(parts, ".")
}

// keyAt returns the key set on line ln whose name without array indexes
// is short ("repo.priority" on the line of repo[1]'s priority is
// "repo[1].priority"): the decoder's type errors name keys without
// indexes, and messages name them one way. Without a match it is short.
func (m keyLines) keyAt(ln int, short string) string {
	for k, l := range m {
		if l == ln && stripIndexes(k) == short {
			return k
		}
	}
	return short
}

// stripIndexes drops the "[N]" of array tables from key.
func stripIndexes(key string) string {
	var b strings.Builder
	depth := 0
	for _, r := range key {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// line returns the line of key, else of its table, else 0.
func (m keyLines) line(key string) int {
	for key != "" {
		if ln, ok := m[key]; ok {
			return ln
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}

// undecodedLines assigns lines to unknown keys reported without array
// indexes (the decoder says "repo.typo" for any [[repo]]): each report takes
// the next unused occurrence.
func (m keyLines) undecoded(key string, used map[string]bool) (string, int) {
	parts := strings.Split(key, ".")
	// Try to find an indexed form: for each prefix that is an array table,
	// try indexes in order.
	var try func(prefix string, rest []string) (string, int)
	try = func(prefix string, rest []string) (string, int) {
		if len(rest) == 0 {
			if ln, ok := m[prefix]; ok && !used[prefix] {
				return prefix, ln
			}
			return "", 0
		}
		join := func(p, s string) string {
			if p == "" {
				return s
			}
			return p + "." + s
		}
		if k, ln := try(join(prefix, rest[0]), rest[1:]); ln > 0 {
			return k, ln
		}
		for idx := 0; ; idx++ {
			t := join(prefix, rest[0]) + "[" + strconv.Itoa(idx) + "]"
			if _, ok := m[t]; !ok {
				break
			}
			if k, ln := try(t, rest[1:]); ln > 0 {
				return k, ln
			}
		}
		return "", 0
	}
	k, ln := try("", parts)
	if k == "" {
		return key, 0
	}
	used[k] = true
	return k, ln
}
