package index

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// The package shards are the catalog's bulk (one entry per store path), and
// encoding/json's reflection was the largest cost of writing them. These
// appenders write exactly what encoding/json writes for the same values
// with SetEscapeHTML(false) — TestAppendPackagesMatchesEncodingJSON and
// FuzzAppendJSONString hold them to that — so readers keep using
// encoding/json.

// appendPackages appends the JSON array of pkgs and a newline, as
// json.Encoder.Encode does.
func appendPackages(b []byte, pkgs []Package) []byte {
	if pkgs == nil {
		pkgs = []Package{} // "[]", as encodeShard always wrote
	}
	return append(appendArray(b, pkgs, appendPackage), '\n')
}

func appendPackage(b []byte, p *Package) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, p.Name)
	b = append(b, `,"latest":`...)
	b = appendJSONString(b, p.Latest)
	b = append(b, `,"versions":`...)
	b = appendArray(b, p.Versions, appendVersion)
	b = append(b, `,"repos":`...)
	b = appendStrings(b, p.Repos)
	b = appendOmitEmpty(b, `,"description":`, p.Description)
	b = appendOmitEmpty(b, `,"homepage":`, p.Homepage)
	b = appendOmitEmpty(b, `,"license":`, p.License)
	b = appendOmitEmpty(b, `,"attrPath":`, p.AttrPath)
	return append(b, '}')
}

func appendVersion(b []byte, v *Version) []byte {
	b = append(b, `{"version":`...)
	b = appendJSONString(b, v.Version)
	b = append(b, `,"paths":`...)
	b = appendArray(b, v.Paths, appendPathInfo)
	b = append(b, `,"repos":`...)
	b = appendStrings(b, v.Repos)
	if len(v.Channels) > 0 {
		b = append(b, `,"channels":`...)
		b = appendStrings(b, v.Channels)
	}
	if v.Ambiguous {
		b = append(b, `,"ambiguous":true`...)
	}
	return append(b, '}')
}

func appendPathInfo(b []byte, p *PathInfo) []byte {
	b = append(b, `{"storePath":`...)
	b = appendJSONString(b, p.StorePath)
	b = append(b, `,"output":`...)
	b = appendJSONString(b, p.Output)
	b = append(b, `,"narSize":`...)
	b = strconv.AppendUint(b, p.NarSize, 10)
	b = append(b, `,"fileSize":`...)
	b = strconv.AppendUint(b, p.FileSize, 10)
	b = append(b, `,"uploaded":`...)
	b = appendJSONTime(b, p.Uploaded)
	b = append(b, `,"repos":`...)
	b = appendStrings(b, p.Repos)
	return append(b, '}')
}

func appendOmitEmpty(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendJSONString(append(b, key...), s)
}

func appendStrings(b []byte, ss []string) []byte {
	return appendArray(b, ss, func(b []byte, s *string) []byte { return appendJSONString(b, *s) })
}

// appendArray appends xs as a JSON array (null when nil, as encoding/json
// writes a nil slice), each element by appendElem.
func appendArray[T any](b []byte, xs []T, appendElem func([]byte, *T) []byte) []byte {
	if xs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendElem(b, &xs[i])
	}
	return append(b, ']')
}

// appendJSONTime is time.Time's MarshalJSON (RFC 3339 with nanoseconds).
// Years outside 0–9999 never occur here (upload times); were one to, the
// encoder would write it anyway rather than fail the whole shard.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does without HTML escaping:
// '"', '\\' and control characters escaped (\b \f \n \r \t by name), invalid
// UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
