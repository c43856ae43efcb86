package nix

import (
	"strings"
	"testing"
)

func TestParseCacheInfo(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want CacheInfo
	}{
		{"", CacheInfo{}},
		{"StoreDir: /nix/store\n", CacheInfo{StoreDir: "/nix/store"}},
		{"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n", CacheInfo{"/nix/store", true, 40}},
		{"StoreDir: /nix/store\r\nWantMassQuery: 1\r\nPriority: 30\r\n", CacheInfo{"/nix/store", true, 30}}, // CRLF is trimmed
		{"StoreDir:/nix/store\nPriority:\t7 \n", CacheInfo{"/nix/store", false, 7}},
		{"StoreDir: /nix/store", CacheInfo{StoreDir: "/nix/store"}}, // no final newline needed
		{"WantMassQuery: true\n", CacheInfo{}},                      // only "1" is true
		{"WantMassQuery: 1\nWantMassQuery: 0\n", CacheInfo{}},       // last wins
		{"Priority: 30abc\n", CacheInfo{Priority: 30}},              // std::stoi ignores trailing junk
		{"Priority: +7\n", CacheInfo{Priority: 7}},
		{"Priority:  -5 \n", CacheInfo{Priority: -5}},
		{"Priority: 0x10\n", CacheInfo{Priority: 0}},
		{"Priority: 2147483647\n", CacheInfo{Priority: 2147483647}},
		{"garbage\n\n StoreDir: /gnu/store\nUnknown: 1\nStoreDir: /nix/store\n", CacheInfo{StoreDir: "/nix/store"}}, // " StoreDir" is another key
		{"StoreDir: /nix/store\nStoreDir: /nix/store\n", CacheInfo{StoreDir: "/nix/store"}},
		{"StoreDir: /gnu/store\n", CacheInfo{StoreDir: "/gnu/store"}},
	} {
		got, err := ParseCacheInfo([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("ParseCacheInfo(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"Priority: abc\n", `nix-cache-info line 1: Priority "abc" is not an integer`},
		{"Priority: \n", `Priority "" is not an integer`},
		{"Priority: 99999999999\n", `is not an integer`},
		{"Priority: -\n", `is not an integer`},
		{"StoreDir: /gnu/store\nStoreDir: /nix/store\n", `nix-cache-info line 2: StoreDir "/nix/store" contradicts line 1 ("/gnu/store")`},
	} {
		_, err := ParseCacheInfo([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCacheInfo(%q) error = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestCacheInfoBytes(t *testing.T) {
	for _, tc := range []struct {
		c    CacheInfo
		want string
	}{
		{CacheInfo{}, "StoreDir: /nix/store\n"}, // what Nix writes into an empty cache
		{CacheInfo{StoreDir: "/nix/store", WantMassQuery: true, Priority: 40}, "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"},
		{CacheInfo{Priority: -3}, "StoreDir: /nix/store\nPriority: -3\n"},
	} {
		got := string(tc.c.Bytes())
		if got != tc.want {
			t.Errorf("%+v.Bytes() = %q, want %q", tc.c, got, tc.want)
		}
		back, err := ParseCacheInfo([]byte(got))
		if c := tc.c; err != nil || back.WantMassQuery != c.WantMassQuery || back.Priority != c.Priority || back.StoreDir != StoreDir {
			t.Errorf("round trip of %+v = %+v, %v", c, back, err)
		}
	}
}
