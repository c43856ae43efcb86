// Package compress decompresses NAR files by the name Nix uses in a
// narinfo's Compression field.
//
// [NewReader] accepts "xz", "zstd", "bzip2", "gzip", "none", and "" (which
// Nix reads as bzip2). Other names that Nix 2.x can write ("br", "lz4",
// "lzip", …) are rejected with an error wrapping [ErrUnsupported] that lists
// the supported names.
//
// Decoders:
//   - xz: the xz program (xz -dc, single-threaded, --format=xz) when
//     exec.LookPath finds it, because it decodes about twice as fast as the
//     Go implementation; github.com/ulikunitz/xz otherwise, and for inputs
//     smaller than [XZSubprocessMinSize] when the size is passed to
//     [NewReaderSize] (starting a process costs more than it saves there).
//   - zstd: github.com/klauspost/compress/zstd, synchronous
//     (WithDecoderConcurrency(1)), low-memory, window at most 128 MiB.
//   - bzip2 and gzip: the standard library.
//
// Both xz decoders accept the same input: one or more concatenated xz
// streams with optional stream padding, with LZMA2 dictionaries of at most
// 128 MiB (Nix's presets use at most 64 MiB; the default is 8 MiB). This is
// checked by a differential test. The Go decoder gets help for that:
// ulikunitz/xz v0.5.17 on its own returns a clean EOF for input cut at or
// inside a block header, and allocates whatever dictionary a block header
// declares (up to 4 GiB), so the package follows the xz container framing
// itself. Memory stays bounded by the format's window (about 10 MiB for an
// xz -6 stream in the xz process, 24 MiB in the Go decoder, 14 MiB for
// zstd, measured over 1 GiB streams); nothing is buffered in proportion
// to the stream.
//
// # Errors
//
// NewReader itself only fails for an unsupported method. Every problem
// with the data surfaces from Read, never as a clean io.EOF: truncated
// input, corrupt input, garbage after the compressed stream and empty input
// all give errors wrapping [ErrCorrupt] (truncation also wraps
// io.ErrUnexpectedEOF), with a message such as
//
//	compress: truncated or corrupt xz data: xz: (stdin): Unexpected end of input
//
// which includes the xz program's own diagnostic. An error returned by the
// underlying reader is reported as such ("compress: reading xz input: …",
// wrapping it), not as corruption.
//
// # Closing
//
// Close must be called. It kills and reaps an xz process that is still
// running and waits for the goroutine that copies the input into it, so no
// process or goroutine outlives Close, also when the consumer stops early.
// Close never closes the underlying reader; if a Read on it is in progress,
// Close waits for that Read to return.
package compress
