package index

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/internal/nix"
)

// entryCases are store path names as nixpkgs produces them, with the entry
// ParseEntry must derive. Their SplitName results are also checked against
// real Nix by TestNixDifferential.
var entryCases = []struct {
	name                 string
	pkg, version, output string
	kind                 Kind
}{
	// Single-output packages.
	{"hello-2.12.1", "hello", "2.12.1", "out", KindPackage},
	{"nss-cacert-3.92", "nss-cacert", "3.92", "out", KindPackage},
	{"font-bh-100dpi-1.0.3", "font-bh", "100dpi-1.0.3", "out", KindPackage}, // parseDrvName splits at "-1"
	{"perl5.36.0-Test-Simple-1.302", "perl5.36.0-Test-Simple", "1.302", "out", KindPackage},
	{"perl5.38.2-libwww-perl-6.72", "perl5.38.2-libwww-perl", "6.72", "out", KindPackage},
	{"python3-3.11.6", "python3", "3.11.6", "out", KindPackage},
	{"python3.11-requests-2.31.0", "python3.11-requests", "2.31.0", "out", KindPackage},
	{"bash-5.2-p15", "bash", "5.2-p15", "out", KindPackage}, // p15 is the patch level, not an output
	{"gcc-wrapper-12.3.0", "gcc-wrapper", "12.3.0", "out", KindPackage},
	{"binutils-wrapper-2.40", "binutils-wrapper", "2.40", "out", KindPackage},
	{"glibc-2.37-8", "glibc", "2.37-8", "out", KindPackage},
	{"glibc-locales-2.37-8", "glibc-locales", "2.37-8", "out", KindPackage},
	{"gtk+3-3.24.38", "gtk+3", "3.24.38", "out", KindPackage},
	{"libX11-1.8.7", "libX11", "1.8.7", "out", KindPackage},
	{"xorg-server-21.1.9", "xorg-server", "21.1.9", "out", KindPackage},
	{"SDL2-2.28.5", "SDL2", "2.28.5", "out", KindPackage},
	{"7zz-23.01", "7zz", "23.01", "out", KindPackage},
	{"go-1.21.4", "go", "1.21.4", "out", KindPackage},
	{"systemd-254.6", "systemd", "254.6", "out", KindPackage},
	{"openjdk-17.0.8+7", "openjdk", "17.0.8+7", "out", KindPackage},
	{"openssh-9.5p1", "openssh", "9.5p1", "out", KindPackage},
	{"tzdata-2023c", "tzdata", "2023c", "out", KindPackage},
	{"iana-etc-20231117", "iana-etc", "20231117", "out", KindPackage},
	{"mailcap-2.1.53", "mailcap", "2.1.53", "out", KindPackage},
	{"e2fsprogs-1.47.0", "e2fsprogs", "1.47.0", "out", KindPackage},
	{"linux-headers-6.5", "linux-headers", "6.5", "out", KindPackage},
	{"initrd-linux-6.1.62", "initrd-linux", "6.1.62", "out", KindPackage},
	{"pkg-config-wrapper-0.29.2", "pkg-config-wrapper", "0.29.2", "out", KindPackage},
	{"nixos-system-nixos-23.11.20231129.057f9ae", "nixos-system-nixos", "23.11.20231129.057f9ae", "out", KindPackage},
	{"vimplugin-nvim-treesitter-2023-11-16", "vimplugin-nvim-treesitter", "2023-11-16", "out", KindPackage},
	{"hello-0-unstable-2023-10-01", "hello", "0-unstable-2023-10-01", "out", KindPackage},
	{"hello-unstable-2023-10-01", "hello-unstable", "2023-10-01", "out", KindPackage}, // old style: Nix's pname too
	{"ghc-9.4.8-with-packages", "ghc", "9.4.8-with-packages", "out", KindPackage},
	{"texlive-combined-full-2023", "texlive-combined-full", "2023", "out", KindPackage},

	// Outputs other than out.
	{"openssl-3.0.8-dev", "openssl", "3.0.8", "dev", KindPackage},
	{"openssl-3.0.12-bin", "openssl", "3.0.12", "bin", KindPackage},
	{"openssl-3.0.12-debug", "openssl", "3.0.12", "debug", KindPackage},
	{"xz-5.4.4-man", "xz", "5.4.4", "man", KindPackage},
	{"xz-5.4.4-bin", "xz", "5.4.4", "bin", KindPackage},
	{"xz-5.4.4-doc", "xz", "5.4.4", "doc", KindPackage},
	{"glibc-2.37-8-bin", "glibc", "2.37-8", "bin", KindPackage},
	{"glibc-2.38-27-getent", "glibc", "2.38-27", "getent", KindPackage},
	{"python3.11-requests-2.31.0-dist", "python3.11-requests", "2.31.0", "dist", KindPackage},
	{"python3.11-numpy-1.26.1-dist", "python3.11-numpy", "1.26.1", "dist", KindPackage},
	{"util-linux-2.39-lib", "util-linux", "2.39", "lib", KindPackage},
	{"util-linux-minimal-2.39.2-login", "util-linux-minimal", "2.39.2", "login", KindPackage},
	{"bash-5.2-p15-dev", "bash", "5.2-p15", "dev", KindPackage},
	{"bash-interactive-5.2-p15-man", "bash-interactive", "5.2-p15", "man", KindPackage},
	{"bash-5.2-p15-info", "bash", "5.2-p15", "info", KindPackage},
	{"gcc-12.3.0-lib", "gcc", "12.3.0", "lib", KindPackage},
	{"gcc-12.3.0-libgcc", "gcc", "12.3.0", "libgcc", KindPackage},
	{"gcc-12.3.0-checksum", "gcc", "12.3.0", "checksum", KindPackage},
	{"xgcc-12.3.0-libgcc", "xgcc", "12.3.0", "libgcc", KindPackage},
	{"nss-3.94-tools", "nss", "3.94", "tools", KindPackage},
	{"linux-6.1.62-modules", "linux", "6.1.62", "modules", KindPackage},
	{"linux-6.1.62-dev", "linux", "6.1.62", "dev", KindPackage},
	{"curl-8.4.0-devdoc", "curl", "8.4.0", "devdoc", KindPackage},
	{"zlib-1.3-static", "zlib", "1.3", "static", KindPackage},
	{"libxml2-2.11.5-py", "libxml2", "2.11.5", "py", KindPackage},
	{"llvm-16.0.6-python", "llvm", "16.0.6", "python", KindPackage},
	{"kitty-0.30.1-terminfo", "kitty", "0.30.1", "terminfo", KindPackage},
	{"kitty-0.30.1-shell_integration", "kitty", "0.30.1", "shell_integration", KindPackage},
	{"bind-9.18.19-dnsutils", "bind", "9.18.19", "dnsutils", KindPackage},
	{"bind-9.18.19-host", "bind", "9.18.19", "host", KindPackage},
	{"nodejs-18.18.2-libv8", "nodejs", "18.18.2", "libv8", KindPackage},
	{"mesa-23.1.9-drivers", "mesa", "23.1.9", "drivers", KindPackage},
	{"gtk+3-3.24.38-dev", "gtk+3", "3.24.38", "dev", KindPackage},
	{"systemd-minimal-254.6-dev", "systemd-minimal", "254.6", "dev", KindPackage},
	{"coreutils-9.3-info", "coreutils", "9.3", "info", KindPackage},
	{"gnumake-4.4.1-man", "gnumake", "4.4.1", "man", KindPackage},
	{"ncurses-6.4-dev", "ncurses", "6.4", "dev", KindPackage},
	{"gobject-introspection-1.76.1-dev", "gobject-introspection", "1.76.1", "dev", KindPackage},
	{"glib-2.78.0-bin", "glib", "2.78.0", "bin", KindPackage},
	{"nix-2.18.1-man", "nix", "2.18.1", "man", KindPackage},
	{"ghc-9.4.8-doc", "ghc", "9.4.8", "doc", KindPackage},
	{"aeson-2.1.2.1-doc", "aeson", "2.1.2.1", "doc", KindPackage},
	{"qemu-8.1.2-ga", "qemu", "8.1.2", "ga", KindPackage},
	{"vim-9.0.2048-xxd", "vim", "9.0.2048", "xxd", KindPackage},
	{"shadow-4.14.2-su", "shadow", "4.14.2", "su", KindPackage},
	{"e2fsprogs-1.47.0-bin", "e2fsprogs", "1.47.0", "bin", KindPackage},
	{"rustc-1.73.0-doc", "rustc", "1.73.0", "doc", KindPackage},
	{"libgpg-error-1.47-info", "libgpg-error", "1.47", "info", KindPackage},
	{"postgresql-15.5-lib", "postgresql", "15.5", "lib", KindPackage},
	{"perl-5.38.0-man", "perl", "5.38.0", "man", KindPackage},
	{"sqlite-3.43.2-bin", "sqlite", "3.43.2", "bin", KindPackage},
	{"gnome-desktop-44.0-installedTests", "gnome-desktop", "44.0", "installedTests", KindPackage},
	{"hello-2.12.1-out", "hello", "2.12.1", "out", KindPackage}, // Nix never writes "-out"; stripped anyway

	// Not a known output: stays in the version.
	{"nodejs-20.9.0-foo", "nodejs", "20.9.0-foo", "out", KindPackage},
	{"openssl-1.1.1w", "openssl", "1.1.1w", "out", KindPackage},

	// Derivations.
	{"hello-2.12.1.drv", "hello", "2.12.1", "out", KindDerivation},
	{"openssl-3.0.8.drv", "openssl", "3.0.8", "out", KindDerivation},
	{"stdenv-linux.drv", "stdenv-linux", "", "out", KindDerivation},
	{"source.drv", "source", "", "out", KindDerivation},
	{"hello-2.12.1.tar.gz.drv", "hello", "2.12.1.tar.gz", "out", KindDerivation},
	{"python3.11-requests-2.31.0.drv", "python3.11-requests", "2.31.0", "out", KindDerivation},

	// Sources and fetched inputs.
	{"source", "source", "", "out", KindSource},
	{"src", "src", "", "out", KindSource},
	{"hello-2.12.1.tar.gz", "hello", "2.12.1", "out", KindSource},
	{"openssl-3.0.12.tar.gz", "openssl", "3.0.12", "out", KindSource},
	{"xz-5.4.4.tar.bz2", "xz", "5.4.4", "out", KindSource},
	{"linux-6.1.62.tar.xz", "linux", "6.1.62", "out", KindSource},
	{"gcc-12.3.0.tar.xz", "gcc", "12.3.0", "out", KindSource},
	{"requests-2.31.0.tar.gz", "requests", "2.31.0", "out", KindSource},
	{"serde-1.0.190.tar.gz", "serde", "1.0.190", "out", KindSource},
	{"nokogiri-1.15.4.gem", "nokogiri", "1.15.4", "out", KindSource},
	{"nixexprs.tar.xz", "nixexprs", "", "out", KindSource},
	{"bootstrap-tools.tar.xz", "bootstrap-tools", "", "out", KindSource},
	{"ghc-9.4.8-src.tar.xz", "ghc", "9.4.8-src", "out", KindSource},
	{"firefox-119.0.source.tar.xz", "firefox", "119.0.source", "out", KindSource},
	{"CVE-2023-4911.patch", "CVE", "2023-4911", "out", KindSource},
	{"fix-build-with-gcc-13.patch", "fix-build-with-gcc", "13", "out", KindSource},
	{"xterm-388.diff.gz", "xterm", "388", "out", KindSource},
	{"rust-lib-src", "rust-lib", "", "out", KindSource},
	{"hello-2.12.1-src", "hello", "2.12.1", "out", KindSource},
	{"nixpkgs-source", "nixpkgs", "", "out", KindSource},
	{"Hack-v3.003-ttf.zip", "Hack-v3.003-ttf", "", "out", KindSource},
	{"commons-io-2.11.0.jar", "commons-io", "2.11.0", "out", KindSource},
	{"hello-1.0-vendor.tar.gz", "hello", "1.0-vendor", "out", KindSource},
	{"Foo-1.0.TAR.GZ", "Foo", "1.0", "out", KindSource},

	{"hello-1.0-go-modules", "hello", "1.0", "out", KindSource}, // buildGoModule's vendored modules
	{"hello-1.0-npm-deps", "hello", "1.0", "out", KindSource},
	{"hello-1.0-vendor", "hello", "1.0", "out", KindSource},

	// Limits: fetched inputs without a telling name look like packages.
	{"bash52-015", "bash52", "015", "out", KindPackage},       // a bash patch
	{"hello-2ab3c4d", "hello", "2ab3c4d", "out", KindPackage}, // fetchgit's <repo>-<short rev>

	// No version.
	{"hello-script", "hello-script", "", "out", KindOther},
	{"etc", "etc", "", "out", KindOther},
	{"user-environment", "user-environment", "", "out", KindOther},
	{"stdenv-linux", "stdenv-linux", "", "out", KindOther},
	{"system-path", "system-path", "", "out", KindOther},
	{"unit-dbus.service", "unit-dbus.service", "", "out", KindOther},
	{"X-Restart-Triggers-nginx", "X-Restart-Triggers-nginx", "", "out", KindOther},
	{"nixos-rebuild", "nixos-rebuild", "", "out", KindOther},
	{"ld-wrapper.sh", "ld-wrapper.sh", "", "out", KindOther},
	{"fontconfig-etc", "fontconfig-etc", "", "out", KindOther},
	{"hook", "hook", "", "out", KindOther},
	{"foo-dev", "foo-dev", "", "out", KindOther}, // an output suffix is stripped only from a versioned name
	{"libfoo-bin", "libfoo-bin", "", "out", KindOther},
	{"foo--dev", "foo", "-dev", "out", KindPackage}, // "foo-" has no version, so nothing is stripped
}

// testHash is a valid hash part (the whole nix32 alphabet).
const testHash = "0123456789abcdfghijklmnpqrsvwxyz"

func TestParseEntry(t *testing.T) {
	if len(entryCases) < 60 {
		t.Fatalf("only %d cases", len(entryCases))
	}
	for _, c := range entryCases {
		base := testHash + "-" + c.name
		want := Entry{
			StorePath: "/nix/store/" + base, Hash: testHash, Name: c.name,
			Package: c.pkg, Version: c.version, Output: c.output, Kind: c.kind,
		}
		for _, in := range []string{base, "/nix/store/" + base} {
			got, err := ParseEntry(in)
			if err != nil {
				t.Errorf("ParseEntry(%q): %v", in, err)
				continue
			}
			if got != want {
				t.Errorf("ParseEntry(%q) =\n  %+v\nwant\n  %+v", in, got, want)
			}
		}
	}
}

// TestParseEntryInvariants checks the relations ParseEntry documents
// between an entry and SplitName of its name.
func TestParseEntryInvariants(t *testing.T) {
	for _, c := range entryCases {
		e, err := ParseEntry(testHash + "-" + c.name)
		if err != nil {
			t.Fatal(err)
		}
		if msg := entryInvariant(e); msg != "" {
			t.Error(msg)
		}
	}
}

// entryInvariant returns what is wrong with e, or "".
func entryInvariant(e Entry) string {
	if e.StorePath != "/nix/store/"+e.Hash+"-"+e.Name || e.Output == "" || !knownOutputs[e.Output] {
		return fmt.Sprintf("%s: bad entry %+v", e.Name, e)
	}
	switch e.Kind {
	case KindPackage:
		version := e.Version
		if e.Name == e.Package+"-"+e.Version+"-"+e.Output {
			version += "-" + e.Output // an output was stripped
		} else if e.Name != e.Package+"-"+e.Version || e.Output != "out" {
			return fmt.Sprintf("%s: %+v is not <Package>-<Version>[-<Output>]", e.Name, e)
		}
		if p, v := SplitName(e.Name); p != e.Package || v != version || e.Version == "" {
			return fmt.Sprintf("%s: %+v, but SplitName gives %q, %q", e.Name, e, p, v)
		}
	case KindOther:
		if _, v := SplitName(e.Name); v != "" || e.Package != e.Name || e.Version != "" || e.Output != "out" {
			return fmt.Sprintf("%s: %+v", e.Name, e)
		}
	case KindDerivation:
		if p, v := SplitName(strings.TrimSuffix(e.Name, ".drv")); e.Package != p || e.Version != v || e.Output != "out" {
			return fmt.Sprintf("%s: %+v", e.Name, e)
		}
	case KindSource:
		base := e.Package
		if e.Version != "" {
			base += "-" + e.Version
		}
		if e.Output != "out" || !strings.HasPrefix(e.Name, base) {
			return fmt.Sprintf("%s: %+v", e.Name, e)
		}
	default:
		return fmt.Sprintf("%s: unknown Kind %q", e.Name, e.Kind)
	}
	return ""
}

// FuzzParseEntry checks that ParseEntry accepts every valid store path and
// that its entries keep the documented invariants.
func FuzzParseEntry(f *testing.F) {
	for _, c := range entryCases {
		f.Add(c.name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		base := testHash + "-" + name
		_, perr := nix.ParseStorePathBase(base)
		e, err := ParseEntry(base)
		if (err == nil) != (perr == nil) {
			t.Fatalf("ParseEntry(%q): %v, but ParseStorePathBase: %v", base, err, perr)
		}
		if err != nil {
			return
		}
		if msg := entryInvariant(e); msg != "" {
			t.Fatal(msg)
		}
	})
}

func TestParseEntryErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"hello-2.12.1",
		"/nix/store/" + testHash,
		"/nix/store/" + testHash + "-",
		"/nix/store/" + testHash + "-hello-2.12.1/bin/hello",
		"/tmp/" + testHash + "-hello-2.12.1",
		"nix/store/" + testHash + "-hello-2.12.1",
		"e123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1", // 'e' is not nix32
		testHash + "_hello-2.12.1",
		testHash + "-hello 2.12.1",
		testHash + "-" + strings.Repeat("a", 212),
	} {
		e, err := ParseEntry(in)
		if err == nil {
			t.Errorf("ParseEntry(%q) = %+v; want an error", in, e)
			continue
		}
		if !errors.Is(err, nix.ErrInvalidStorePath) {
			t.Errorf("ParseEntry(%q): error %v does not wrap nix.ErrInvalidStorePath", in, err)
		}
	}
}

func TestKnownOutputsStartWithALetter(t *testing.T) {
	// Required for "Package is SplitName's pname": the '-' before an output
	// must never be a split point.
	for o := range knownOutputs {
		if !isAlpha(o[0]) {
			t.Errorf("output %q does not start with a letter", o)
		}
	}
}

func TestParseEntryAllocations(t *testing.T) {
	abs := "/nix/store/" + testHash + "-openssl-3.0.8-dev"
	if n := testing.AllocsPerRun(100, func() { ParseEntry(abs) }); n != 0 {
		t.Errorf("ParseEntry(absolute path) allocates %v times", n)
	}
	base := testHash + "-hello-2.12.1.tar.gz"
	if n := testing.AllocsPerRun(100, func() { ParseEntry(base) }); n > 1 {
		t.Errorf("ParseEntry(basename) allocates %v times; want at most 1 (the absolute path)", n)
	}
}

func BenchmarkParseEntry(b *testing.B) {
	paths := make([]string, len(entryCases))
	for i, c := range entryCases {
		paths[i] = "/nix/store/" + testHash + "-" + c.name
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := ParseEntry(paths[i%len(paths)]); err != nil {
			b.Fatal(err)
		}
	}
}
