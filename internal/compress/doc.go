// Package compress is nixrepo's one implementation of decompression: NAR
// files by the name Nix uses in a narinfo's Compression field, and HTTP
// bodies by their Content-Encoding. Every decoder is bounded in the memory
// its stream may demand and, on request, in the bytes it may produce.
//
// [NewReader] accepts "xz", "zstd", "bzip2", "gzip", "none", and "" (which
// Nix reads as bzip2). Other names that Nix 2.x can write ("br", "lz4",
// "lzip", …) are rejected with an error wrapping [ErrUnsupported] that lists
// the supported names. [NewContentReader] decodes an HTTP body by its
// Content-Encoding value: "br", "zstd", "xz", "gzip" or "x-gzip", and
// "identity" (or none); anything else, including a list of codings, wraps
// ErrUnsupported. [NewReaderOptions] and NewContentReader take [Options].
//
// Decoders:
//   - xz: the xz program (xz -dc, single-threaded, --format=xz) when
//     exec.LookPath finds it, because it decodes about twice as fast as the
//     Go implementation; github.com/ulikunitz/xz otherwise, and for inputs
//     smaller than [XZSubprocessMinSize] when the size is known
//     (Options.SizeHint; starting a process costs more than it saves there).
//   - zstd: github.com/klauspost/compress/zstd, synchronous
//     (WithDecoderConcurrency(1)), low-memory.
//   - br: github.com/andybalholm/brotli (HTTP bodies only).
//   - bzip2 and gzip: the standard library.
//
// Both xz decoders accept the same input: one or more concatenated xz
// streams with optional stream padding. This is checked by a differential
// test. The Go decoder gets help for that: ulikunitz/xz v0.5.17 on its own
// returns a clean EOF for input cut at or inside a block header, and
// allocates whatever dictionary a block header declares (up to 4 GiB), so
// the package follows the xz container framing itself.
//
// # Limits
//
// Options.MaxMemory bounds the window a stream may declare: the LZMA2
// dictionary of xz, the zstd window, the brotli window. The default,
// [DefaultMaxMemory], is 128 MiB: Nix's xz presets use at most 64 MiB
// (the default -6 uses 8 MiB), 128 MiB is the zstd program's limit. A
// stream declaring more fails with an error wrapping [ErrMemoryLimit]
// before the window is allocated: the Go xz decoder checks each block
// header, the xz program gets --memlimit-decompress (the limit plus a
// quarter, so that it refuses the next dictionary size up), zstd frames
// are checked by the decoder (WithDecoderMaxWindow), brotli's window is
// read from the stream's first byte (the format allows at most 16 MiB; the
// large-window extension is refused). gzip (32 KiB) and bzip2 (under
// 4 MiB) have small fixed windows. Memory stays bounded by the window
// (about 10 MiB for an xz -6 stream in the xz process, 24 MiB in the Go
// decoder, 14 MiB for zstd, measured over 1 GiB streams); nothing is
// buffered in proportion to the stream.
//
// Callers decoding small objects pass a lower MaxMemory, so that many
// concurrent decodes stay cheap: the server decodes narinfo, listing, log
// and realisation bodies with 16 MiB (brotli's largest window; xz up to
// -7, zstd up to level 19), NAR files with its max_decoder_memory.
//
// Options.MaxOutput bounds the decoded bytes. The reader returns at most
// that many: the Read that finds one byte more returns the bytes up to the
// limit and a [*TooLargeError] (wrapping [ErrTooLarge]) naming the limit,
// and the decoder does no more work, so a small input that decodes to
// gigabytes costs only the time to reach the limit.
//
// # Errors
//
// The constructors only fail for an unsupported method. Every problem
// with the data surfaces from Read, never as a clean io.EOF: truncated
// input, corrupt input, garbage after the compressed stream and empty input
// all give errors wrapping [ErrCorrupt] (truncation also wraps
// io.ErrUnexpectedEOF), with a message such as
//
//	compress: truncated or corrupt xz data: xz: (stdin): Unexpected end of input
//
// which includes the xz program's own diagnostic. brotli has no checksum,
// so a changed byte inside a brotli stream can decode to other data. The
// limits give errors wrapping ErrMemoryLimit or ErrTooLarge (not
// ErrCorrupt). An error returned by the underlying reader is reported as
// such ("compress: reading xz input: …", wrapping it), not as corruption.
// Errors are sticky.
//
// # Closing
//
// Close must be called. It kills and reaps an xz process that is still
// running and waits for the goroutine that copies the input into it, so no
// process or goroutine outlives Close, also when the consumer stops early.
// Close never closes the underlying reader; if a Read on it is in progress,
// Close waits for that Read to return.
package compress
