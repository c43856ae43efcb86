package nar

// appendJSONString appends s as a JSON string the way Nix 2.8's JSON writer
// does (libutil json.cc, verified against nix copy ?write-nar-listing=1):
// '"' and '\' are backslash-escaped, '\n', '\r' and '\t' use their short
// escapes, the other bytes below 0x20 become \u00xx in lower-case hex, and
// every other byte (DEL, non-ASCII, invalid UTF-8) is copied as it is.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonStringMax is the longest appendJSONString can make a string of n
// bytes: quotes, and six bytes (\u00xx) per byte.
func jsonStringMax(n int) int { return 2 + 6*n }
