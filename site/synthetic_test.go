package site

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/nixrepo/nixrepo/index"
)

// builtinStems are realistic package names for synthetic catalogs when
// Debian's package list is not at hand (and for deterministic tests).
var builtinStems = strings.Fields(`
acl alsa-lib apr aspell atk attr autoconf automake bash bc binutils bison boost brotli bzip2 c-ares
cairo cmake coreutils cpio curl cyrus-sasl dbus db diffutils dejavu-fonts docbook-xml e2fsprogs ed
elfutils expat file findutils flex fontconfig freetype fribidi gawk gcc gdbm gettext ghostscript git
glib glibc gmp gnugrep gnumake gnupg gnused gnutar gobject-introspection gperf gpgme graphite2 gtk3
gzip harfbuzz hello icu iproute2 iptables jansson jq json-c kbd keyutils kmod krb5 less libarchive
libcap libdrm libedit libepoxy libevent libffi libgcrypt libgpg-error libidn2 libjpeg libpng libpsl
libseccomp libselinux libsodium libssh2 libtasn1 libtiff libtool libunistring libuv libwebp libxml2
libxslt libyaml linux-pam lz4 lzo m4 mpfr ncurses nettle nghttp2 ninja nix nodejs numactl openldap
openssh openssl p11-kit pango patch pcre2 perl pixman pkg-config popt procps python3 readline rsync
ruby sqlite strace sudo systemd tcl texinfo tk tzdata unzip util-linux vim wayland wget which xz
zlib zstd`)

// debianStems is this machine's Debian package list (dpkg-query), or nil.
func debianStems() []string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Package}\n").Output()
	if err != nil {
		return nil
	}
	stems := strings.Fields(string(out))
	if len(stems) < 100 {
		return nil
	}
	return stems
}

var (
	synthPrefixes = []string{"", "python3.12-", "perl5.40.0-", "lib", "haskell-", "node-", "rust-", "go-", "ocaml5.2-", "lua5.4-"}
	synthSuffixes = []string{"", "-utils", "-common", "-data", "-ng", "-lite", "-tools", "2", "-extras", "-bin", "-unwrapped", "-wrapper"}
	synthOutputs  = []string{"out", "bin", "dev", "lib", "man", "doc"}
)

const nix32Chars = "0123456789abcdfghijklmnpqrsvwxyz"

// SyntheticCatalog makes a deterministic catalog of n packages named from
// builtinStems (seeded by seed) with 1–5 versions of 1–5 outputs each.
func SyntheticCatalog(n int, seed uint64) *index.Catalog {
	return syntheticCatalog(n, seed, builtinStems)
}

func syntheticCatalog(n int, seed uint64, stems []string) *index.Catalog {
	rng := rand.New(rand.NewPCG(seed, 42))
	repos := []index.RepoInfo{
		{Name: "nix-local", Type: "local", Priority: 30, Description: "Packages built by CI", PublicKey: "nix-local-1:6q1Kz3WbqHFx0m2lHPNa3o8CWQKZ5nqkqLNlBOa0bFY="},
		{Name: "upstream", Type: "remote", Priority: 40, Description: "Mirror"},
	}
	seen := make(map[string]bool, n)
	names := make([]string, 0, n)
	for r := 0; len(names) < n; r++ {
		for _, s := range stems {
			if len(names) == n {
				break
			}
			p, x := synthPrefixes[r%len(synthPrefixes)], synthSuffixes[(r/len(synthPrefixes))%len(synthSuffixes)]
			name := p + s + x
			if k := r / (len(synthPrefixes) * len(synthSuffixes)); k > 0 {
				name += fmt.Sprintf("-%d", k)
			}
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	hash := func() string {
		b := make([]byte, 32)
		for i := range b {
			b[i] = nix32Chars[rng.IntN(32)]
		}
		return string(b)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cat := &index.Catalog{Generated: base.Add(300 * 24 * time.Hour), Repos: repos, Packages: make([]index.Package, 0, n)}
	for _, name := range names {
		nv := 1 + rng.IntN(5)
		major, minor := 1+rng.IntN(9), rng.IntN(20)
		p := index.Package{Name: name, Description: "The " + name + " package, synthetic for benchmarks"}
		repoSet := map[string]bool{}
		for v := 0; v < nv; v++ {
			ver := fmt.Sprintf("%d.%d.%d", major, minor, nv-v)
			repo := repos[rng.IntN(2)].Name
			repoSet[repo] = true
			no := 1 + rng.IntN(5)
			outs := append([]string{}, synthOutputs[:no]...)
			sort.Strings(outs)
			version := index.Version{Version: ver, Repos: []string{repo}}
			for _, o := range outs {
				sp := "/nix/store/" + hash() + "-" + name + "-" + ver
				if o != "out" {
					sp += "-" + o
				}
				nar := uint64(1000 + rng.IntN(50_000_000))
				version.Paths = append(version.Paths, index.PathInfo{
					StorePath: sp, Output: o, NarSize: nar, FileSize: nar / 3,
					Uploaded: base.Add(time.Duration(rng.IntN(300*24)) * time.Hour), Repos: []string{repo},
				})
				cat.Stats.Paths++
			}
			p.Versions = append(p.Versions, version)
			cat.Stats.Versions++
		}
		p.Latest = p.Versions[0].Version
		for r := range repoSet {
			p.Repos = append(p.Repos, r)
		}
		sort.Strings(p.Repos)
		cat.Packages = append(cat.Packages, p)
	}
	cat.Stats.Packages = len(cat.Packages)
	for i := range repos {
		cat.Repos[i].Paths = cat.Stats.Paths / 2
	}
	return cat
}
