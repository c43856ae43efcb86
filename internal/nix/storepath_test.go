package nix

import (
	"errors"
	"strings"
	"testing"
)

const (
	testHash = "y9v4w1kf41c10q7fdxlbz10s0adiximd"
	testBase = testHash + "-dep-1.0"
)

func TestParseStorePathValid(t *testing.T) {
	for _, tc := range []struct{ base, name string }{
		{testBase, "dep-1.0"},
		{testHash + "-a", "a"},
		{testHash + "-" + strings.Repeat("x", MaxNameLen), strings.Repeat("x", MaxNameLen)},
		{testHash + "-AZaz09+-._?=", "AZaz09+-._?="},
		{testHash + "-x.drv", "x.drv"},
		{testHash + "--", "-"},
		{"00000000000000000000000000000000-a..", "a.."},
	} {
		p, err := ParseStorePath(StoreDir + "/" + tc.base)
		if err != nil {
			t.Errorf("ParseStorePath(%q): %v", tc.base, err)
			continue
		}
		if p.Base() != tc.base || p.Name() != tc.name || p.HashPart() != tc.base[:32] ||
			p.Absolute() != "/nix/store/"+tc.base || p.String() != p.Absolute() || p.IsZero() {
			t.Errorf("ParseStorePath(%q) = %+v (hash %q name %q)", tc.base, p, p.HashPart(), p.Name())
		}
		q, err := ParseStorePathBase(tc.base)
		if err != nil || q != p {
			t.Errorf("ParseStorePathBase(%q) = %v, %v; want %v", tc.base, q, err, p)
		}
	}
	if !MustParseStorePath("/nix/store/" + testHash + "-x.drv").IsDerivation() {
		t.Error("IsDerivation")
	}
	var zero StorePath
	if !zero.IsZero() || zero.Absolute() != "" || zero.HashPart() != "" || zero.Name() != "" {
		t.Error("zero StorePath")
	}
}

func TestParseStorePathErrors(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen+1)
	for _, tc := range []struct{ in, want string }{
		{"", `not an absolute path`},
		{"nix/store/" + testBase, "not an absolute path"},
		{"/gnu/store/" + testBase, "not in the Nix store /nix/store"},
		{"/nix/store", "not in the Nix store"},
		{"/nix/store/", `"/nix/store/": empty`},
		{"/nix/store//" + testBase, `has a '/' after the basename ""`},
		{"/nix/store/" + testBase + "/", `has a '/' after the basename`},
		{"/nix/store/" + testBase + "/bin/sh", `has a '/' after the basename`},
		{"/nix/store/" + testHash, "too short: want <32-character hash>-<name>, got 32 characters"},
		{"/nix/store/" + testHash + "-", "name is empty"},
		{"/nix/store/" + testHash + "Xdep-1.0", "want '-' after the 32-character hash part, got illegal character 'X'"},
		{"/nix/store/y9v4w1kf41c10q7fdxlbz10s0adiximE-dep", `hash part "y9v4w1kf41c10q7fdxlbz10s0adiximE" contains illegal character 'E' at offset 31`},
		{"/nix/store/e9v4w1kf41c10q7fdxlbz10s0adiximd-dep", `illegal character 'e' at offset 0 (nix32 alphabet is 0-9 and a-z without e, o, u, t)`},
		{"/nix/store/" + testHash + "-" + long, "name is 212 characters long, the limit is 211"},
		{"/nix/store/" + testHash + "-.", `name "." is not allowed`},
		{"/nix/store/" + testHash + "-..", `name ".." is not allowed`},
		{"/nix/store/" + testHash + "-.-x", `name ".-x" is not allowed`},
		{"/nix/store/" + testHash + "-..-x", `name "..-x" is not allowed`},
		{"/nix/store/" + testHash + "-dep 1.0", `name "dep 1.0" contains illegal character ' ' at offset 3 (allowed: A-Z a-z 0-9 and + - . _ ? =)`},
		{"/nix/store/" + testHash + "-dep-1.0\r", `name contains a carriage return '\r' (CRLF line endings?`},
		{"/nix/store/" + testHash + "-dép", `contains illegal byte 0xc3 at offset 1`},
		{"/nix/store/" + testHash + "-a'b", `contains illegal character "'"`},
		{"/nix/store/" + testHash + "-a\x00", `contains illegal byte 0x00`},
	} {
		_, err := ParseStorePath(tc.in)
		if err == nil {
			t.Errorf("ParseStorePath(%q) succeeded, want error containing %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseStorePath(%q) error\n  %v\nwant it to contain\n  %s", tc.in, err, tc.want)
		}
		if !errors.Is(err, ErrInvalidStorePath) {
			t.Errorf("ParseStorePath(%q) error does not wrap ErrInvalidStorePath", tc.in)
		}
		if !strings.Contains(err.Error(), "invalid store path") {
			t.Errorf("error %q does not name the problem", err)
		}
	}
	// The error names the path.
	_, err := ParseStorePathBase("abc")
	if err == nil || err.Error() != `invalid store path "abc": too short: want <32-character hash>-<name>, got 3 characters` {
		t.Errorf("ParseStorePathBase(abc) = %v", err)
	}
	if _, err := ParseStorePathBase("/nix/store/" + testBase); err == nil {
		t.Error("ParseStorePathBase accepted an absolute path")
	}
}

func TestIsHashPart(t *testing.T) {
	for s, want := range map[string]bool{
		testHash:                            true,
		"00000000000000000000000000000000":  true,
		"y9v4w1kf41c10q7fdxlbz10s0adixime":  false,
		"y9v4w1kf41c10q7fdxlbz10s0adixim":   false,
		"y9v4w1kf41c10q7fdxlbz10s0adiximdd": false,
		"Y9V4W1KF41C10Q7FDXLBZ10S0ADIXIMD":  false,
		"":                                  false,
	} {
		if IsHashPart(s) != want {
			t.Errorf("IsHashPart(%q) = %v", s, !want)
		}
	}
}
