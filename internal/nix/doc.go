// Package nix reads and writes the formats of a Nix binary cache, exactly
// as Nix does. It depends on the standard library only and knows nothing
// about buckets, HTTP or the rest of nixrepo.
//
// # Store paths
//
// A store path is /nix/store/<hash>-<name>: a 32-character nix32 hash
// (20 bytes) and a name of 1 to 211 characters from [A-Za-z0-9+-._?=] that
// does not start with '.'. StorePath holds one; ParseStorePath takes the
// absolute form and ParseStorePathBase the basename used in narinfo
// References and Deriver fields. Only the store directory /nix/store
// (StoreDir) is supported.
//
// # Hashes and nix32
//
// Nix prints hashes as "<algo>:<digest>" with the digest in nix32, Nix's own
// base32: alphabet 0123456789abcdfghijklmnpqrsvwxyz, the last character
// holding the lowest bits of the first byte (EncodeNix32, DecodeNix32).
// ParseHash also accepts base16 and base64 digests and SRI strings
// ("sha256-<base64>"), but, like Nix's narinfo parser, never a digest
// without its algorithm.
//
// # nix-cache-info
//
// The file at the cache root, e.g.
//
//	StoreDir: /nix/store
//	WantMassQuery: 1
//	Priority: 40
//
// parsed leniently (CacheInfo, ParseCacheInfo).
//
// # narinfo
//
// Each store path in a cache has "<hash>.narinfo" describing it and
// pointing at its NAR file:
//
//	StorePath: /nix/store/y9v4w1kf41c10q7fdxlbz10s0adiximd-dep-1.0
//	URL: nar/1nj8qw83jfbq7chly2fbkqlgz29s7ic96vki3j4dfv0vwz594s94.nar.zst
//	Compression: zstd
//	FileHash: sha256:1nj8qw83jfbq7chly2fbkqlgz29s7ic96vki3j4dfv0vwz594s94
//	FileSize: 89
//	NarHash: sha256:00kjynz8n03652qccs76ivsvark3pr3dfr6w1ba3x7bx83kcknvv
//	NarSize: 120
//	References:
//	Deriver: sinxa9h1zjjj6c3fvnqzwjr2mvnv97ig-dep-1.0.drv
//	Sig: test-1:ikNPAEjOLNXDLjnFzxjQ/te8AwGY4uIF3xeSqvex1IzYc5V/PfH59ppGFXtlTzGW3Me3wreIZjE7+i1V96ZbAQ==
//
// (the References line really is "References: " with a trailing space).
// ParseNarInfo follows Nix 2.8's parser rule for rule, including its
// quirks, and rejects the few inputs where Nix would silently mangle a value;
// its errors are *ParseError values naming the line and key. NarInfo.Bytes
// writes what Nix's writer writes, so a narinfo made by Nix survives
// ParseNarInfo → Bytes byte for byte. FileHash/FileSize describe the
// compressed file at URL, NarHash/NarSize the uncompressed NAR; Nix names
// NAR files after FileHash, with NarExtension's extension (the bucket
// layout, and so the URL nixrepo writes, is package store's).
//
// # Reference order
//
// A binary cache is closed under references: a narinfo is only written once
// the narinfos of its references are. ReferencesFirst is the one order every
// writer of several narinfos at once uses (batch ingest, closure mirroring,
// virtual repositories): each narinfo after those of its references among
// them, deterministic for a given set.
//
// # Signatures
//
// A narinfo is signed by signing its fingerprint
//
//	1;<store path>;sha256:<nix32 NarHash>;<NarSize>;<sorted absolute references joined by ",">
//
// with ed25519 and adding "Sig: <key name>:<base64 signature>". Keys use
// Nix's file formats: "name:base64(seed ‖ public key)" for SecretKey and
// "name:base64(public key)" for PublicKey, interchangeable with the files
// made by nix-store --generate-binary-cache-key.
package nix
