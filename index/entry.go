package index

import (
	"fmt"
	"strings"

	"github.com/nixrepo/nixrepo/internal/nix"
)

// Kind classifies a store path by its name.
type Kind string

const (
	// KindPackage is a built output with a version: "hello-2.12.1",
	// "openssl-3.0.8-dev".
	KindPackage Kind = "package"
	// KindDerivation is a store derivation: a name ending in ".drv".
	KindDerivation Kind = "derivation"
	// KindSource is a source or fetched input, recognised by its name only
	// (see ParseEntry): "source", "hello-2.12.1.tar.gz", "fix-gcc-13.patch",
	// "rust-lib-src".
	KindSource Kind = "source"
	// KindOther is anything else, in practice a name without a version:
	// "hello-script", "etc", "user-environment", "stdenv-linux".
	KindOther Kind = "other"
)

// Entry is the catalog view of one store path.
type Entry struct {
	StorePath string // absolute /nix/store/<hash>-<name>
	Hash      string // 32-char hash part
	Name      string // the full name after the hash
	Package   string // pname: the name without version and output
	Version   string // version without the output suffix ("" when none)
	Output    string // "out" unless a known output suffix was stripped (see ParseEntry)
	Kind      Kind
}

// OutputOut is the default output. Its store path name is the derivation
// name itself; any other output <o> is named "<derivation name>-<o>"
// (Nix derivations.cc (outputPathName)).
const OutputOut = "out"

// knownOutputs are the output names ParseEntry strips from the end of a
// name. They are the outputs of nixpkgs' multiple-outputs.sh conventions
// (out bin dev lib doc devdoc man devman info, plus debug from
// separateDebugInfo and static) and package-specific outputs that are
// common in a nixpkgs closure. Every one starts with a letter, so the '-'
// before it is never where SplitName splits; that keeps the stripped and
// the unstripped name's pname equal.
var knownOutputs = map[string]bool{
	// multiple-outputs.sh and stdenv
	"out": true, "bin": true, "dev": true, "lib": true, "doc": true,
	"devdoc": true, "man": true, "devman": true, "info": true,
	"debug": true, "static": true,
	// package-specific, all seen in nixpkgs
	"dist":              true, // every buildPythonPackage (wheel)
	"modules":           true, // linux kernels
	"py":                true, // libxml2 and others
	"python":            true, // llvm, clang and others
	"terminfo":          true, // kitty, foot, alacritty, ...
	"shell_integration": true, // kitty
	"installedTests":    true, // GNOME libraries
	"tests":             true,
	"libgcc":            true, // gcc
	"checksum":          true, // gcc
	"getent":            true, // glibc
	"login":             true, // util-linux
	"swap":              true, // util-linux
	"su":                true, // shadow
	"dnsutils":          true, // bind
	"host":              true, // bind
	"tools":             true, // nss
	"libv8":             true, // nodejs
	"drivers":           true, // mesa
	"osmesa":            true, // mesa
	"jre":               true, // openjdk 8
	"xxd":               true, // vim
	"ga":                true, // qemu (guest agent)
	"data":              true, // Haskell packages with a separate data output
	"tex":               true, // TeX Live packages
	"texdoc":            true, // TeX Live packages
	"tlpkg":             true, // TeX Live packages
}

// sourceExts are the file name extensions (lower case, compared
// ASCII-case-insensitively) of sources and fetched inputs. A compression
// extension may follow a compressible one; the whole chain is stripped.
var sourceExts = map[string]extKind{
	".tar": compressible, ".patch": compressible, ".diff": compressible, ".cpio": compressible,
	".tgz": archive, ".tbz": archive, ".tbz2": archive, ".txz": archive, ".tzst": archive, ".tlz": archive,
	".zip": archive, ".7z": archive, ".rar": archive, ".git": archive,
	".gem": archive, ".crate": archive, ".whl": archive, ".jar": archive, ".deb": archive, ".rpm": archive,
	".dmg": archive, ".appimage": archive,
	// compression formats: "x.tar.gz" is ".tar" then ".gz"; "x.gz" alone is also a source
	".gz": compression, ".bz2": compression, ".xz": compression, ".zst": compression, ".lz": compression,
	".lzma": compression, ".lz4": compression, ".z": compression,
}

type extKind uint8

const (
	archive      extKind = iota + 1 // a source by itself
	compressible                    // a source by itself, may be followed by a compression
	compression                     // a source by itself, may follow a compressible one
)

// extOf returns the kind of the extension starting at the last '.' of s,
// and that index; 0 when s has no such extension or nothing before it.
func extOf(s string) (extKind, int) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || len(s)-i > 10 {
		return 0, -1
	}
	var buf [10]byte
	ext := buf[:len(s)-i]
	for j := range ext {
		c := s[i+j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		ext[j] = c
	}
	return sourceExts[string(ext)], i
}

// sourceSuffixes end the names of sources and of fetched dependency sets
// (buildGoModule's "<name>-go-modules", fetchNpmDeps' "<name>-npm-deps",
// fetchPnpmDeps' "<name>-pnpm-deps", cargo's "<name>-vendor"). Matched
// case-sensitively.
var sourceSuffixes = []string{"-src", "-source", "-go-modules", "-npm-deps", "-pnpm-deps", "-vendor"}

// ParseEntry derives the catalog entry of a store path given as an absolute
// path (/nix/store/<hash>-<name>) or as a basename (<hash>-<name>). The path
// must be valid for nix.ParseStorePath / nix.ParseStorePathBase; nothing
// after the name (a "/bin/foo" inside the path) is accepted.
//
// The name is classified by the first rule that applies:
//
//  1. Derivation: the name ends in ".drv". Package and Version are
//     SplitName of the name without ".drv" (the derivation name, which is
//     also the name of its "out" output), Output is "out"; nothing else is
//     stripped ("hello-2.12.1.tar.gz.drv" → hello / 2.12.1.tar.gz).
//  2. Source: the name is "source" or "src" (the default name of
//     fetchFromGitHub, fetchzip and others); ends in "-src" or
//     "-source"; ends in "-go-modules", "-npm-deps", "-pnpm-deps" or
//     "-vendor" (fetched dependencies of buildGoModule, buildNpmPackage,
//     pnpm and Rust packages); or ends in a source extension: an archive
//     (.tar, .tgz, .tbz, .tbz2, .txz, .tzst, .tlz, .zip, .7z, .rar,
//     .cpio), a patch (.patch, .diff), a repository (.git), a fetched
//     package file (.gem, .crate, .whl, .jar, .deb, .rpm, .dmg,
//     .AppImage) or a compression format (.gz, .bz2, .xz, .zst, .lz,
//     .lzma, .lz4, .Z), a compression optionally after .tar, .patch,
//     .diff or .cpio ("x.tar.gz", "x.patch.gz"). Extensions match
//     regardless of case. Package and Version are SplitName of the name
//     without that suffix ("hello-2.12.1.tar.gz" → hello / 2.12.1,
//     "hello-1.0-go-modules" → hello / 1.0, "source" → source / ""),
//     Output is "out".
//  3. Package: the name, after stripping at most one trailing
//     "-<known output>", has a version by SplitName. The output is
//     stripped only when what remains still has a version:
//     "openssl-3.0.8-dev" → openssl / 3.0.8 / dev, "glibc-2.37-8-bin" →
//     glibc / 2.37-8 / bin, "python3.11-requests-2.31.0-dist" →
//     python3.11-requests / 2.31.0 / dist, but "hello-1.0" → hello / 1.0 /
//     out and "bash-5.2-p15" → bash / 5.2-p15 / out. Package is always
//     SplitName(Name)'s pname, and Version + "-" + Output is SplitName's
//     version when an output was stripped.
//  4. Other: no version ("hello-script", "etc", "user-environment",
//     "glibc-locales", "foo-bin"): Package is the whole name, Version is
//     "", Output is "out".
//
// The known outputs are out, bin, dev, lib, doc, devdoc, man, devman, info,
// debug, static (nixpkgs multiple-outputs.sh, separateDebugInfo) and the
// package-specific dist, modules, py, python, terminfo, shell_integration,
// installedTests, tests, libgcc, checksum, getent, login, swap, su,
// dnsutils, host, tools, libv8, drivers, osmesa, jre, xxd, ga, data, tex,
// texdoc and tlpkg.
//
// Limits: a store path does not record its output name, so this is a
// heuristic on the name alone. A derivation whose version really ends in
// one of those words ("foo-1.0-tests") is reported as that output; an
// output not in the list stays in Version ("nodejs-20.9.0-foo" → nodejs /
// 20.9.0-foo / out); and an "-out" suffix is stripped although Nix never
// writes one. Fetched inputs without a telling name (fetchgit's
// "<repo>-<rev>", bash's "bash52-015" patches, fetchYarnDeps' "offline")
// are not recognised as sources, and a derivation named in nixpkgs' old
// "unstable-YYYY-MM-DD" version style gets pname "<pname>-unstable" as Nix
// itself does.
func ParseEntry(storePath string) (Entry, error) {
	var (
		sp  nix.StorePath
		err error
		abs = strings.HasPrefix(storePath, "/")
	)
	if abs {
		sp, err = nix.ParseStorePath(storePath)
	} else {
		sp, err = nix.ParseStorePathBase(storePath)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("index: %w", err)
	}
	e := Entry{Hash: sp.HashPart(), Name: sp.Name(), Output: OutputOut}
	if abs {
		e.StorePath = storePath
	} else {
		e.StorePath = nix.StoreDir + "/" + storePath
	}
	name := e.Name
	if base, ok := strings.CutSuffix(name, ".drv"); ok {
		e.Kind = KindDerivation
		e.Package, e.Version = SplitName(base)
		return e, nil
	}
	if base, ok := sourceBase(name); ok {
		e.Kind = KindSource
		e.Package, e.Version = SplitName(base)
		return e, nil
	}
	if i := strings.LastIndexByte(name, '-'); i > 0 && knownOutputs[name[i+1:]] {
		if pname, version := SplitName(name[:i]); version != "" {
			e.Package, e.Version, e.Output, e.Kind = pname, version, name[i+1:], KindPackage
			return e, nil
		}
	}
	e.Package, e.Version = SplitName(name)
	if e.Version != "" {
		e.Kind = KindPackage
	} else {
		e.Kind = KindOther
	}
	return e, nil
}

// sourceBase reports whether name is a source or fetched input by rule 2 of
// ParseEntry, and returns the name without the recognised suffix.
func sourceBase(name string) (string, bool) {
	switch name {
	case "source", "src":
		return name, true
	}
	if k, i := extOf(name); k != 0 {
		base := name[:i]
		if k == compression {
			if k2, j := extOf(base); k2 == compressible {
				base = base[:j]
			}
		}
		return base, true
	}
	for _, suffix := range sourceSuffixes {
		if base, ok := strings.CutSuffix(name, suffix); ok && base != "" {
			return base, true
		}
	}
	return "", false
}
