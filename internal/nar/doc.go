// Package nar verifies Nix archives (NARs) while streaming them.
//
// [Check] reads an uncompressed NAR exactly once, validates it against the
// NAR grammar, hashes every byte with SHA-256, counts the bytes and, on
// request, builds the ".ls" listing that Nix writes next to a NAR in a binary
// cache (write-nar-listing=1). It is synchronous (no goroutines), holds no file
// contents in memory and is fast: the bytes are hashed straight out of its read
// buffer in large chunks. Memory is bounded for every NAR, whatever its size
// or shape: a 256 KiB read buffer, the path of the current node (at most
// [MaxPathLen]) and, on request, the listing (at most Options.MaxListing).
//
// # Grammar
//
// The accepted grammar is the canonical one that Nix's dumper produces:
//
//	nar       = str("nix-archive-1"), node
//	node      = str("("), str("type"), (regular | symlink | directory), str(")")
//	regular   = str("regular"), [str("executable"), str("")], str("contents"), str(<bytes>)
//	symlink   = str("symlink"), str("target"), str(<target>)
//	directory = str("directory"), { str("entry"), str("("), str("name"), str(<name>),
//	            str("node"), node, str(")") }
//	str(s)    = u64le(len(s)), s, zero padding to a multiple of 8 bytes
//
// Check is strict where Nix's own parser is lax, so that every accepted NAR
// is the single canonical serialisation of its tree: padding must be zero
// bytes, fields must come in the order above, directory entries must be
// sorted strictly ascending by their bytes (so duplicates are rejected),
// names must be non-empty, not "." or "..", and contain neither "/" nor NUL,
// symlink targets must be non-empty and contain no NUL. Names are limited to
// [MaxNameLen] bytes, targets to [MaxTargetLen] bytes, nesting to [MaxDepth]
// levels and the path of a node inside the NAR to [MaxPathLen] bytes (Nix
// dumps and restores trees by full paths, which the kernel limits to 4096
// bytes; Nix's parser itself has no limits). File contents may have any
// length. Data after the
// top-level node is an error, and so is a stream that ends early: a
// truncated NAR never yields a clean result.
//
// # Errors
//
// Every error returned by Check is an [*Error] giving the byte offset in the
// NAR and the path inside the NAR, for example
//
//	nar: offset 1234: /bin: entries not sorted ("b" after "c")
//
// Use errors.Is with [ErrInvalid] (grammar violation, trailing data),
// io.ErrUnexpectedEOF (truncated stream) or the reader's own error to
// tell the cases apart.
//
// # Listing
//
// With [Options.Listing], Result.Listing holds the JSON document that Nix
// 2.8 writes as <hash>.ls, byte for byte: compact JSON
// {"version":1,"root":NODE}, where regular files carry "size", "executable"
// (only when true) and "narOffset" (the offset of the file contents in the
// uncompressed NAR), symlinks carry "target" and directories carry
// "entries". Strings are escaped as Nix's JSON writer does: '"' and '\' get
// a backslash, newline, carriage return and tab become \n, \r and \t, other
// bytes below 0x20 become \u00xx (lower-case hex), and every other byte,
// including DEL, non-ASCII and invalid UTF-8, is copied unchanged. The
// listing is therefore not always valid UTF-8, exactly like Nix's.
//
// The listing is built in memory, and is bounded: Options.MaxListing
// (default [DefaultMaxListing], 16 MiB, some 200,000 entries). A NAR whose
// listing would be larger is checked all the same, without a listing:
// Result.Listing is nil and Result.ListingSkipped says why. Nix treats the
// listing as optional, so refusing such a NAR (a complete TeX Live, or a
// crafted NAR of thousands of 64 KiB symlink targets that compresses to
// kilobytes) would be wrong.
package nar
