package nix

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxNarInfoSize is the largest narinfo nixrepo reads or accepts, in bytes
// (1 MiB). Real narinfos are a few hundred bytes; even thousands of
// references and signatures stay far below it. Everything that reads a
// narinfo from outside (an upload, an incoming source, an upstream cache)
// stops at this size.
const MaxNarInfoSize = 1 << 20

// NarInfo is the content of a "<hashpart>.narinfo" file.
//
// After ParseNarInfo, References and Sigs are sorted and free of
// duplicates, because Nix keeps both in sets and writes them in that order;
// Bytes sorts and deduplicates them in any case.
type NarInfo struct {
	StorePath   StorePath
	URL         string // as written, usually "nar/<filehash>.nar<ext>"; may be absolute
	Compression string // as written; "" when absent or empty (see EffectiveCompression)
	FileHash    Hash   // of the (compressed) file at URL; zero when absent
	FileSize    uint64 // 0 when absent
	NarHash     Hash   // of the uncompressed NAR
	NarSize     uint64
	References  []StorePath
	Deriver     string   // .drv basename; "" when absent or "unknown-deriver"
	System      string   // written by Nix 2.8/2.9 only, ignored by Nix
	Sigs        []string // raw "keyname:base64" values (sorted and unique after ParseNarInfo; Sign appends)
	CA          string   // content address in Nix's canonical rendering (see CanonicalCA); "" when absent
}

// ParseError is returned by ParseNarInfo. Line is 1-based (0 when the
// problem is not tied to a line, such as a missing field) and Key is the
// narinfo key involved, if any.
type ParseError struct {
	Line int
	Key  string
	Msg  string
	Err  error // underlying error, if any (e.g. wrapping ErrInvalidStorePath)
}

func (e *ParseError) Error() string {
	switch {
	case e.Line > 0 && e.Key != "":
		return fmt.Sprintf("narinfo line %d (%s): %s", e.Line, e.Key, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("narinfo line %d: %s", e.Line, e.Msg)
	case e.Key != "":
		return fmt.Sprintf("narinfo (%s): %s", e.Key, e.Msg)
	}
	return "narinfo: " + e.Msg
}

func (e *ParseError) Unwrap() error { return e.Err }

// EffectiveCompression is the compression Nix assumes: "bzip2" when the
// Compression field is absent or empty.
func (n *NarInfo) EffectiveCompression() string {
	if n.Compression == "" {
		return "bzip2"
	}
	return n.Compression
}

// NarExtension is the file extension Nix gives a NAR compressed with the
// given method (binary-cache-store.cc): ".xz", ".bz2", ".zst", ".lzip",
// ".lz4", ".br", and "" for anything else (including none and gzip).
func NarExtension(compression string) string {
	switch compression {
	case "xz":
		return ".xz"
	case "bzip2":
		return ".bz2"
	case "zstd":
		return ".zst"
	case "lzip":
		return ".lzip"
	case "lz4":
		return ".lz4"
	case "br":
		return ".br"
	}
	return ""
}

// The narinfo keys Nix 2.8 understands.
const (
	keyStorePath   = "StorePath"
	keyURL         = "URL"
	keyCompression = "Compression"
	keyFileHash    = "FileHash"
	keyFileSize    = "FileSize"
	keyNarHash     = "NarHash"
	keyNarSize     = "NarSize"
	keyReferences  = "References"
	keyDeriver     = "Deriver"
	keySystem      = "System"
	keySig         = "Sig"
	keyCA          = "CA"
)

func isKnownKey(k string) bool {
	switch k {
	case keyStorePath, keyURL, keyCompression, keyFileHash, keyFileSize, keyNarHash,
		keyNarSize, keyReferences, keyDeriver, keySystem, keySig, keyCA:
		return true
	}
	return false
}

// ParseNarInfo parses a narinfo with the rules of Nix 2.8's NarInfo
// constructor (nar-info.cc), which later Nix versions and Lix share:
//
//   - The text is a sequence of "Key: value\n" entries. The key runs to the
//     first ':'; the value starts two bytes later and runs to the next
//     '\n'. Every entry, including the last, must end in '\n'.
//   - StorePath (a path in /nix/store, lexically cleaned like Nix's
//     canonPath), URL (non-empty), NarHash and NarSize (non-zero) are
//     required; all other keys are optional.
//   - FileHash and NarHash must name their algorithm (see ParseHash).
//   - References is a space-separated list of store path basenames; a
//     second References line is an error if an earlier one was non-empty.
//   - A second non-empty CA line is an error; an empty CA means none.
//   - Other repeated keys: the last one wins; Sig lines accumulate.
//   - "Deriver: unknown-deriver" means no deriver (and does not clear an
//     earlier Deriver line).
//   - Unknown keys are ignored, whatever follows their colon.
//
// Where Nix 2.8 would silently mangle a value, this parser rejects it
// instead: a known key not followed by exactly ": " (Nix would drop the
// first byte of the value), control characters such as '\r' in a value
// (CRLF files), store paths without the '-' after the hash, and store path
// names starting with '.' (see ParseStorePathBase). Quirks of
// Nix's tokenizer are kept: a line without ':' is glued to the next line
// to form one unknown key (so a blank line hides the line after it), and
// an unknown key written as "Foo:" consumes the following line as its
// value. Errors for missing required fields point at such lines.
func ParseNarInfo(b []byte) (*NarInfo, error) {
	s := string(b)
	n := &NarInfo{}
	var (
		havePath, haveNarHash bool
		urlLine, narSizeLine  int
		refsLine, caLine      int
		hint                  string // a tokenizer quirk that may explain a missing field
		line                  = 1    // physical line number of pos
	)
	pos := 0
	for pos < len(s) {
		colon := strings.IndexByte(s[pos:], ':')
		if colon < 0 {
			if s[pos] == '\n' {
				return nil, &ParseError{Line: line, Msg: "unexpected empty line (Nix rejects a narinfo that ends in a blank line)"}
			}
			return nil, &ParseError{Line: line, Msg: fmt.Sprintf("%q has no ':' (want \"Key: value\")", firstLine(s[pos:]))}
		}
		colon += pos
		name := s[pos:colon]
		known := isKnownKey(name)

		// Nix: value = s[colon+2 : s.find('\n', colon+2)].
		eol := -1
		if colon+2 <= len(s) {
			if i := strings.IndexByte(s[colon+2:], '\n'); i >= 0 {
				eol = colon + 2 + i
			}
		}
		badSep := colon+1 >= len(s) || s[colon+1] != ' '
		if known && badSep {
			return nil, &ParseError{Line: line, Key: name, Msg: fmt.Sprintf(
				"%q: the ':' must be followed by a single space (Nix would drop the first byte of the value)", firstLine(s[pos:]))}
		}
		if eol < 0 {
			key := name
			if strings.IndexByte(name, '\n') >= 0 {
				key = ""
			}
			last := line + strings.Count(s[pos:], "\n")
			if s[colon+1:] == "\n" {
				return nil, &ParseError{Line: last - 1, Key: key, Msg: "the last line ends in ':' without the space Nix needs (\"Key: \\n\")"}
			}
			return nil, &ParseError{Line: last, Key: key, Msg: "missing final newline (every narinfo line, including the last, must end in \"\\n\")"}
		}
		value := s[colon+2 : eol]
		startLine := line
		line += strings.Count(s[pos:eol+1], "\n")
		pos = eol + 1

		if !known {
			if hint == "" {
				if i := strings.IndexByte(name, '\n'); i >= 0 {
					hint = fmt.Sprintf("line %d %q has no ':', so Nix reads it and the next line as one unknown key", startLine, name[:i])
				} else if badSep && s[colon+1] == '\n' {
					hint = fmt.Sprintf("line %d %q has no space after ':', so Nix reads line %d as its value", startLine, name+":", startLine+1)
				} else if k := strings.TrimSpace(name); k != name && isKnownKey(k) {
					hint = fmt.Sprintf("line %d has key %q, which is not %q", startLine, name, k)
				}
			}
			continue
		}
		if i := firstControl(value); i >= 0 {
			if value[i] == '\r' {
				return nil, &ParseError{Line: startLine, Key: name, Msg: "value " + crMessage}
			}
			return nil, &ParseError{Line: startLine, Key: name, Msg: fmt.Sprintf("value %q contains control character %q", value, value[i])}
		}
		perr := func(msg string, err error) error {
			return &ParseError{Line: startLine, Key: name, Msg: msg, Err: err}
		}

		switch name {
		case keyStorePath:
			p, err := parseNarInfoStorePath(value)
			if err != nil {
				return nil, perr(err.Error(), err)
			}
			n.StorePath = p
			havePath = true
		case keyURL:
			n.URL = value
			urlLine = startLine
		case keyCompression:
			n.Compression = value
		case keyFileHash, keyNarHash:
			h, err := ParseHash(value)
			if err != nil {
				return nil, perr(err.Error(), err)
			}
			if name == keyFileHash {
				n.FileHash = h
			} else {
				n.NarHash = h
				haveNarHash = true
			}
		case keyFileSize, keyNarSize:
			v, ok := parseUint64Nix(value)
			if !ok {
				return nil, perr(fmt.Sprintf("%q is not a decimal unsigned 64-bit integer", value), nil)
			}
			if name == keyFileSize {
				n.FileSize = v
			} else {
				n.NarSize = v
				narSizeLine = startLine
			}
		case keyReferences:
			if len(n.References) > 0 {
				return nil, perr(fmt.Sprintf("second References line (the first is line %d)", refsLine), nil)
			}
			refsLine = startLine
			refs, err := parseReferences(value)
			if err != nil {
				return nil, perr(err.Error(), err)
			}
			n.References = refs
		case keyDeriver:
			if value != "unknown-deriver" {
				if _, err := ParseStorePathBase(value); err != nil {
					return nil, perr(err.Error(), err)
				}
				n.Deriver = value
			}
		case keySystem:
			n.System = value
		case keySig:
			n.Sigs = append(n.Sigs, value)
		case keyCA:
			if value == "" {
				break
			}
			if n.CA != "" {
				return nil, perr(fmt.Sprintf("second CA line (the first is line %d)", caLine), nil)
			}
			ca, err := CanonicalCA(value)
			if err != nil {
				return nil, perr(err.Error(), err)
			}
			n.CA = ca
			caLine = startLine
		}
	}

	missing := func(key, msg string, line int) error {
		if hint != "" {
			msg += " (" + hint + ")"
		}
		return &ParseError{Line: line, Key: key, Msg: msg}
	}
	switch {
	case !havePath:
		return nil, missing(keyStorePath, "required field StorePath is missing", 0)
	case !haveNarHash:
		return nil, missing(keyNarHash, "required field NarHash is missing", 0)
	case n.URL == "" && urlLine == 0:
		return nil, missing(keyURL, "required field URL is missing", 0)
	case n.URL == "":
		return nil, missing(keyURL, "URL must not be empty", urlLine)
	case n.NarSize == 0 && narSizeLine == 0:
		return nil, missing(keyNarSize, "required field NarSize is missing", 0)
	case n.NarSize == 0:
		return nil, missing(keyNarSize, "NarSize must not be zero", narSizeLine)
	}
	n.References = sortedUniqueRefs(n.References)
	n.Sigs = sortedUniqueStrings(n.Sigs)
	return n, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	const max = 100
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// firstControl is the index of the first ASCII control byte in s, or -1.
func firstControl(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return i
		}
	}
	return -1
}

// parseNarInfoStorePath is Nix's Store::parseStorePath: canonPath (lexical:
// repeated '/', "." and ".." are resolved), then the directory must be
// the store and the basename a valid store path basename.
func parseNarInfoStorePath(v string) (StorePath, error) {
	if rest, ok := strings.CutPrefix(v, StoreDir+"/"); ok && strings.IndexByte(rest, '/') < 0 {
		return ParseStorePathBase(rest) // fast path: already canonical
	}
	if v == "" {
		return StorePath{}, storePathError(v, "empty (Nix 2.8 aborts on this)")
	}
	if v[0] != '/' {
		return StorePath{}, storePathError(v, "not an absolute path (want "+StoreDir+"/<hash>-<name>)")
	}
	c := canonPath(v)
	dir, base := "/", ""
	if i := strings.LastIndexByte(c, '/'); i > 0 {
		dir, base = c[:i], c[i+1:]
	} else {
		base = c[1:]
	}
	if dir != StoreDir {
		return StorePath{}, storePathError(v, fmt.Sprintf("not in the Nix store %s (directory is %q)", StoreDir, dir))
	}
	if msg := checkBase(base); msg != "" {
		return StorePath{}, storePathError(v, msg)
	}
	return StorePath{base: base}, nil
}

// canonPath is Nix's lexical canonPath for an absolute path: repeated
// slashes collapse, "." is dropped, ".." removes the previous component,
// and there is no trailing slash. Symlinks are not resolved.
func canonPath(p string) string {
	var b strings.Builder
	for {
		for p != "" && p[0] == '/' {
			p = p[1:]
		}
		if p == "" {
			break
		}
		i := strings.IndexByte(p, '/')
		comp := p
		if i >= 0 {
			comp, p = p[:i], p[i:]
		} else {
			p = ""
		}
		switch comp {
		case ".":
		case "..":
			s := b.String()
			if j := strings.LastIndexByte(s, '/'); j >= 0 {
				b.Reset()
				b.WriteString(s[:j])
			}
		default:
			b.WriteByte('/')
			b.WriteString(comp)
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// parseUint64Nix parses like Nix's string2Int<uint64_t> (boost
// lexical_cast): an optional '+', then one or more decimal digits, no
// overflow; no '-', spaces or other bases.
func parseUint64Nix(s string) (uint64, bool) {
	s = strings.TrimPrefix(s, "+")
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// parseReferences splits a References value on ' ' (runs of spaces and
// leading/trailing spaces are allowed, as Nix's tokenizeString does).
func parseReferences(v string) ([]StorePath, error) {
	if v == "" {
		return nil, nil
	}
	refs := make([]StorePath, 0, strings.Count(v, " ")+1)
	for tok := range strings.SplitSeq(v, " ") {
		if tok == "" {
			continue
		}
		p, err := ParseStorePathBase(tok)
		if err != nil {
			return nil, fmt.Errorf("reference %d: %w", len(refs)+1, err)
		}
		refs = append(refs, p)
	}
	if len(refs) == 0 {
		return nil, nil
	}
	return refs, nil
}

func cmpStorePath(a, b StorePath) int { return strings.Compare(a.base, b.base) }

// sortedUniqueRefs sorts and deduplicates in place, as a std::set<StorePath> would.
func sortedUniqueRefs(refs []StorePath) []StorePath {
	if !slices.IsSortedFunc(refs, cmpStorePath) {
		slices.SortFunc(refs, cmpStorePath)
	}
	return slices.Compact(refs)
}

func sortedUniqueStrings(s []string) []string {
	if !slices.IsSorted(s) {
		slices.Sort(s)
	}
	return slices.Compact(s)
}

// Bytes renders n exactly as Nix's NarInfo::to_string does, except that
// fields that are not set are left out instead of asserting: the order is
// StorePath, URL, Compression, FileHash, FileSize, NarHash, NarSize,
// References (always written; "References: " with its trailing space when
// empty), Deriver, System, Sig (sorted, without duplicates), CA. Hashes are
// written as "<algo>:<nix32>". Nix itself always writes Compression
// (bzip2 when it was empty), FileHash and FileSize.
func (n *NarInfo) Bytes() []byte {
	refs := n.References
	if !isStrictlySortedRefs(refs) {
		refs = sortedUniqueRefs(slices.Clone(refs))
	}
	sigs := n.Sigs
	if !isStrictlySorted(sigs) {
		sigs = sortedUniqueStrings(slices.Clone(sigs))
	}

	size := 400 + len(n.URL) + len(n.Compression) + len(n.Deriver) + len(n.System) + len(n.CA)
	for _, r := range refs {
		size += len(r.base) + 1
	}
	for _, s := range sigs {
		size += len(s) + 6
	}
	b := make([]byte, 0, size)
	if !n.StorePath.IsZero() {
		b = append(b, "StorePath: "+StoreDir+"/"...)
		b = append(b, n.StorePath.base...)
		b = append(b, '\n')
	}
	if n.URL != "" {
		b = appendField(b, keyURL, n.URL)
	}
	if n.Compression != "" {
		b = appendField(b, keyCompression, n.Compression)
	}
	if !n.FileHash.IsZero() {
		b = n.FileHash.appendString(append(b, keyFileHash+": "...))
		b = append(b, '\n')
	}
	if n.FileSize != 0 {
		b = strconv.AppendUint(append(b, keyFileSize+": "...), n.FileSize, 10)
		b = append(b, '\n')
	}
	if !n.NarHash.IsZero() {
		b = n.NarHash.appendString(append(b, keyNarHash+": "...))
		b = append(b, '\n')
	}
	if n.NarSize != 0 {
		b = strconv.AppendUint(append(b, keyNarSize+": "...), n.NarSize, 10)
		b = append(b, '\n')
	}
	b = append(b, "References: "...)
	for i, r := range refs {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, r.base...)
	}
	b = append(b, '\n')
	if n.Deriver != "" {
		b = appendField(b, keyDeriver, n.Deriver)
	}
	if n.System != "" {
		b = appendField(b, keySystem, n.System)
	}
	for _, s := range sigs {
		b = appendField(b, keySig, s)
	}
	if n.CA != "" {
		b = appendField(b, keyCA, n.CA)
	}
	return b
}

func appendField(b []byte, key, value string) []byte {
	b = append(b, key...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, '\n')
}

// String is string(n.Bytes()).
func (n *NarInfo) String() string { return string(n.Bytes()) }

func isStrictlySortedRefs(refs []StorePath) bool {
	for i := 1; i < len(refs); i++ {
		if refs[i-1].base >= refs[i].base {
			return false
		}
	}
	return true
}

func isStrictlySorted(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

// Fingerprint is the string Nix signs (ValidPathInfo::fingerprint):
//
//	1;<store path>;sha256:<nix32 NarHash>;<NarSize>;<sorted absolute references, comma-separated>
//
// It fails when StorePath is unset, NarSize is 0 or NarHash is not SHA-256.
func (n *NarInfo) Fingerprint() (string, error) {
	if n.StorePath.IsZero() {
		return "", errors.New("cannot compute the fingerprint of a narinfo without StorePath")
	}
	if n.NarSize == 0 {
		return "", fmt.Errorf("cannot compute the fingerprint of %s: NarSize is not known", n.StorePath)
	}
	if n.NarHash.Algo != HashSHA256 || len(n.NarHash.Digest) != HashSHA256.Size() {
		return "", fmt.Errorf("cannot compute the fingerprint of %s: NarHash must be sha256, not %q", n.StorePath, n.NarHash.Algo)
	}
	refs := n.References
	if !isStrictlySortedRefs(refs) {
		refs = sortedUniqueRefs(slices.Clone(refs))
	}

	size := 2 + len(StoreDir) + 1 + len(n.StorePath.base) + 1 + 7 + 52 + 1 + 20 + 1
	size += len(refs) * (len(StoreDir) + 1 + HashPartLen + 1 + 32)
	b := make([]byte, 0, size)
	b = append(b, "1;"+StoreDir+"/"...)
	b = append(b, n.StorePath.base...)
	b = append(b, ';')
	b = n.NarHash.appendString(b)
	b = append(b, ';')
	b = strconv.AppendUint(b, n.NarSize, 10)
	b = append(b, ';')
	for i, r := range refs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, StoreDir+"/"...)
		b = append(b, r.base...)
	}
	return string(b), nil
}
