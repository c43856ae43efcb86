package channel_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/ingest/channel"
)

// outsideFile is a file beside the test's unpack folders that an archive
// must never reach.
func outsideFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(p, []byte("untouched\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func assertUntouched(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "untouched\n" {
		t.Fatalf("the file outside the unpack folder was written: %q, %v", b, err)
	}
}

// TestPushChannelRefusesWriteThroughSymlink: a symlink entry followed by a
// regular entry of the same name must not write through the link, wherever
// it points.
func TestPushChannelRefusesWriteThroughSymlink(t *testing.T) {
	victim := outsideFile(t)
	rel, err := filepath.Rel(os.TempDir(), victim)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{victim, strings.Repeat("../", 40) + strings.TrimPrefix(victim, "/"), "../../" + rel} {
		t.Run(target, func(t *testing.T) {
			data := xzBytes(t, makeTar(t,
				tarEntry{name: "top/", dir: true},
				tarEntry{name: "top/default.nix", body: "{}"},
				tarEntry{name: "top/x", link: target},
				tarEntry{name: "top/x", body: "pwned\n"},
			))
			st := memStore(t)
			_, err := push(t, st.Repo("r"), data, channel.PushOptions{Snapshot: "1"})
			if err == nil || !strings.Contains(err.Error(), `entry "top/x" replaces the earlier symlink "top/x"`) || !errors.Is(err, ingest.ErrMismatch) {
				t.Fatalf("err = %v; want the replaced symlink named", err)
			}
			assertUntouched(t, victim)
			if k := keys(t, st, ""); len(k) != 0 {
				t.Fatalf("refused push left %v", k)
			}
		})
	}
}

// TestPushChannelRefusesEntryReplacingEarlier: an entry never replaces an
// earlier one (Nix's unpacker would overwrite, so the NAR hash we announce
// would depend on the order of entries), nor lies below a file or symlink.
func TestPushChannelRefusesEntryReplacingEarlier(t *testing.T) {
	def := tarEntry{name: "top/default.nix", body: "{}"}
	tests := []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"same file twice", []tarEntry{def, {name: "top/default.nix", body: "evil"}}, `entry "top/default.nix" replaces the earlier file "top/default.nix"`},
		{"same file, other spelling", []tarEntry{def, {name: "./top/default.nix", body: "evil"}}, `replaces the earlier file "top/default.nix"`},
		{"file over a folder", []tarEntry{def, {name: "top/d/", dir: true}, {name: "top/d", body: "x"}}, `replaces the earlier folder "top/d"`},
		{"folder over a file", []tarEntry{def, {name: "top/f", body: "x"}, {name: "top/f/", dir: true}}, `replaces the earlier file "top/f"`},
		{"symlink over a file", []tarEntry{def, {name: "top/f", body: "x"}, {name: "top/f", link: "default.nix"}}, `replaces the earlier file "top/f"`},
		{"file over an inner symlink", []tarEntry{def, {name: "top/l", link: "default.nix"}, {name: "top/l", body: "evil"}}, `replaces the earlier symlink "top/l"`},
		{"folder over a symlink", []tarEntry{def, {name: "top/l", link: "/tmp"}, {name: "top/l/", dir: true}}, `replaces the earlier symlink "top/l"`},
		{"symlink over a folder", []tarEntry{def, {name: "top/d/", dir: true}, {name: "top/d", link: "/tmp"}}, `replaces the earlier folder "top/d"`},
		{"below a file", []tarEntry{def, {name: "top/f", body: "x"}, {name: "top/f/x", body: "y"}}, `lies below the file "top/f"`},
		{"below a symlink", []tarEntry{def, {name: "top/l", link: "."}, {name: "top/l/default.nix", body: "y"}}, `lies below the symlink "top/l"`},
		{"below a symlink, deeper", []tarEntry{def, {name: "top/l", link: "/"}, {name: "top/l/a/b/c", body: "y"}}, `lies below the symlink "top/l"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := memStore(t)
			_, err := push(t, st.Repo("r"), xzBytes(t, makeTar(t, tc.entries...)), channel.PushOptions{Snapshot: "1"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ingest.ErrMismatch) || errors.Is(err, ingest.ErrTooLarge) {
				t.Fatalf("err = %v; want ErrMismatch with %q", err, tc.want)
			}
			if k := keys(t, st, ""); len(k) != 0 {
				t.Fatalf("refused push left %v", k)
			}
		})
	}
	// A folder named twice replaces nothing.
	st := memStore(t)
	if _, err := push(t, st.Repo("r"), xzBytes(t, makeTar(t, tarEntry{name: "top/", dir: true}, def, tarEntry{name: "top/d/", dir: true},
		tarEntry{name: "top/d/f", body: "x"}, tarEntry{name: "top/d/", dir: true}, tarEntry{name: "top/", dir: true})), channel.PushOptions{Snapshot: "1"}); err != nil {
		t.Fatalf("folders named twice: %v", err)
	}
}

// TestPushChannelTarballLimits: past each limit the push is refused with
// the limit named; entry and byte limits are ErrTooLarge.
func TestPushChannelTarballLimits(t *testing.T) {
	def := tarEntry{name: "top/default.nix", body: "{}"}
	many := []tarEntry{{name: "top/", dir: true}, def}
	for _, n := range []string{"a", "b", "c", "d"} {
		many = append(many, tarEntry{name: "top/" + n, body: n})
	}
	tests := []struct {
		name    string
		entries []tarEntry
		lim     channel.TarballLimits
		tooBig  bool
		want    string
	}{
		{"entries at the limit", many, channel.TarballLimits{MaxEntries: 6}, false, ""},
		{"one entry too many", many, channel.TarballLimits{MaxEntries: 5}, true, "the tarball has more than 5 entries (max_tarball_entries)"},
		{"one big file", []tarEntry{def, {name: "top/big", body: strings.Repeat("x", 5000)}}, channel.TarballLimits{MaxUnpackedSize: 4096}, true, "the tarball unpacks to more than 4096 bytes (max_tarball_unpacked_size)"},
		{"many small files", append(many, tarEntry{name: "top/e", body: strings.Repeat("e", 600)}), channel.TarballLimits{MaxUnpackedSize: 4096}, true, "the tarball unpacks to more than 4096 bytes (max_tarball_unpacked_size)"},
		{"long name", []tarEntry{def, {name: "top/" + strings.Repeat("d/", 2100) + "f", body: "x"}}, channel.TarballLimits{}, false, "more than 4096"},
		{"deep name", []tarEntry{def, {name: "top/" + strings.Repeat("d/", 127) + "f", body: "x"}}, channel.TarballLimits{}, false, "an entry name has 129 path components, more than 128"},
		{"deep name at the bound", []tarEntry{def, {name: "top/" + strings.Repeat("d/", 126) + "f", body: "x"}}, channel.TarballLimits{}, false, ""},
		{"long component", []tarEntry{def, {name: "top/" + strings.Repeat("n", 256), body: "x"}}, channel.TarballLimits{}, false, "a name component is 256 bytes long, more than 255"},
		{"long link target", []tarEntry{def, {name: "top/l", link: strings.Repeat("t", 4097)}}, channel.TarballLimits{}, false, "the link target is 4097 bytes long, more than 4096"},
		{"hard link", []tarEntry{def, {name: "top/h", link: "top/default.nix", typ: tar.TypeLink}}, channel.TarballLimits{}, false, `entry "top/h" is a hard link`},
		{"fifo", []tarEntry{def, {name: "top/p", typ: tar.TypeFifo}}, channel.TarballLimits{}, false, "unsupported type"},
		{"block device", []tarEntry{def, {name: "top/b", typ: tar.TypeBlock}}, channel.TarballLimits{}, false, "unsupported type"},
		{"character device", []tarEntry{def, {name: "top/c", typ: tar.TypeChar}}, channel.TarballLimits{}, false, "unsupported type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := memStore(t)
			_, err := push(t, st.Repo("r"), xzBytes(t, makeTar(t, tc.entries...)), channel.PushOptions{Snapshot: "1", Tarball: tc.lim})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ingest.ErrMismatch) || errors.Is(err, ingest.ErrTooLarge) != tc.tooBig {
				t.Fatalf("err = %v; want %q (ErrTooLarge: %v)", err, tc.want, tc.tooBig)
			}
			if k := keys(t, st, ""); len(k) != 0 {
				t.Fatalf("refused push left %v", k)
			}
		})
	}
}

// zeroBomb is an xz tarball of top/default.nix and files files of mib MiB
// of zeros each, built from concatenated xz streams (one per MiB), so it is
// small and quick to make: 1 GiB takes about 150 KB.
func zeroBomb(t *testing.T, files, mib int) []byte {
	t.Helper()
	chunk := xzBytes(t, make([]byte, 1<<20))
	header := func(h *tar.Header) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		return b.Bytes() // the header block, without closing the archive
	}
	var out bytes.Buffer
	out.Write(xzBytes(t, makeTar(t, tarEntry{name: "top/", dir: true}, tarEntry{name: "top/default.nix", body: strings.Repeat("#", 512)})[:3*512]))
	for f := range files {
		out.Write(xzBytes(t, header(&tar.Header{Name: "top/zero" + string(rune('a'+f%26)) + string(rune('a'+f/26)), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(mib) << 20})))
		for range mib {
			out.Write(chunk)
		}
	}
	out.Write(xzBytes(t, make([]byte, 1024)))
	return out.Bytes()
}

// TestPushChannelRefusesXZBomb: a small tarball that unpacks to 1 GiB is
// refused at the unpacked-bytes limit, quickly, whether the gigabyte is one
// file (refused from its header) or many (refused at the first byte past
// the limit).
func TestPushChannelRefusesXZBomb(t *testing.T) {
	for _, tc := range []struct {
		name       string
		files, mib int
	}{{"one file", 1, 1024}, {"many files", 64, 16}} {
		t.Run(tc.name, func(t *testing.T) {
			bomb := zeroBomb(t, tc.files, tc.mib)
			t.Logf("%d bytes of xz unpacking to %d MiB", len(bomb), tc.files*tc.mib)
			st := memStore(t)
			start := time.Now()
			_, err := push(t, st.Repo("r"), bomb, channel.PushOptions{Snapshot: "1", Tarball: channel.TarballLimits{MaxUnpackedSize: 32 << 20}})
			if err == nil || !errors.Is(err, ingest.ErrTooLarge) || !strings.Contains(err.Error(), "the tarball unpacks to more than 33554432 bytes (max_tarball_unpacked_size)") {
				t.Fatalf("err = %v; want the unpacked-size limit", err)
			}
			t.Logf("refused in %v", time.Since(start))
			// Decoding 1 GiB of zeros takes seconds; 32 MiB takes well under one.
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("refusing took %v: the tarball was unpacked past the limit", d)
			}
		})
	}
}

// TestPushChannelAcceptsBombUnderLimit: the same construction under the
// limit unpacks whole (the bomb is a valid tarball), so the refusal above
// is the limit's doing.
func TestPushChannelAcceptsBombUnderLimit(t *testing.T) {
	st := memStore(t)
	if _, err := push(t, st.Repo("r"), zeroBomb(t, 4, 1), channel.PushOptions{Snapshot: "1", Tarball: channel.TarballLimits{MaxUnpackedSize: 8 << 20}}); err != nil {
		t.Fatal(err)
	}
}

// TestMirrorChannelReportsUnsafeTarball: an upstream release whose tarball
// would write through a symlink, or is past a limit, is not mirrored and
// the error names the channel, the release and the reason.
func TestMirrorChannelReportsUnsafeTarball(t *testing.T) {
	victim := outsideFile(t)
	attack := xzBytes(t, makeTar(t,
		tarEntry{name: "nixos/default.nix", body: "{}"},
		tarEntry{name: "nixos/x", link: victim},
		tarEntry{name: "nixos/x", body: "pwned\n"},
	))
	tests := []struct {
		name    string
		tarball []byte
		lim     channel.TarballLimits
		want    string
	}{
		{"file through a symlink", attack, channel.TarballLimits{}, `entry "nixos/x" replaces the earlier symlink "nixos/x"`},
		{"past the entry limit", channelTarball(t, "nixos", "v"), channel.TarballLimits{MaxEntries: 3}, "the tarball has more than 3 entries (max_tarball_entries)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeChannels{current: map[string]string{}, releases: map[string]map[string][]byte{}, gets: map[string]int{}}
			up := httptest.NewServer(f)
			defer up.Close()
			f.releases["nixos-25.11.1.aaaaaaa"] = map[string][]byte{"nixexprs.tar.xz": tc.tarball}
			f.current["nixos-25.11"] = "nixos-25.11.1.aaaaaaa"
			st := memStore(t)
			_, err := channel.Mirror(context.Background(), st.Repo("r"), up.URL, "nixos-25.11", &channel.MirrorOptions{Tarball: tc.lim})
			if err == nil || !strings.HasPrefix(err.Error(), "mirror nixos-25.11: release nixos-25.11.1.aaaaaaa: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want the release and %q", err, tc.want)
			}
			assertUntouched(t, victim)
			if k := keys(t, st, ""); len(k) != 0 {
				t.Fatalf("a refused release left %v", k)
			}
		})
	}
}
