package ingest

import "errors"

// Admission errors. Every error the single-object entry points (PutNar,
// PutNarInfo, PutListing, PullNar, and ingest/channel's) return for bad
// input wraps one of these, so an HTTP adapter can map it to a status;
// anything else is a failure of the repository itself.
var (
	// ErrInvalid: the request is malformed (bad name, unparsable narinfo).
	ErrInvalid = errors.New("invalid upload")
	// ErrMismatch: the content contradicts its name or claims, or it is
	// not a well-formed NAR, or a reference is missing.
	ErrMismatch = errors.New("upload does not verify")
	// ErrConflict: the repository already has a different path at this name.
	ErrConflict = errors.New("conflicting upload")
)
