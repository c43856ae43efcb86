package ingest

import (
	"fmt"
	"time"
)

// Progress is a snapshot of a running ingest.
type Progress struct {
	Paths, TotalPaths int
	Bytes, TotalBytes int64 // NAR file bytes verified so far / in all
}

// Outcome of one path.
type Outcome string

const (
	Accepted Outcome = "accepted" // verified, signed and stored
	Present  Outcome = "present"  // already in the repository, identical
	Refused  Outcome = "refused"  // not stored; Reason says why
	// Gone: the path left the source while this run read it, and the
	// repository does not have it from this run: another run consuming the
	// same source took it (and stored it before deleting it), or whoever
	// writes the source removed it. Not a refusal.
	Gone Outcome = "gone"
)

// Duration marshals as seconds.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%.3f", time.Duration(d).Seconds())), nil
}

// Problem is one path that failed verification.
type Problem struct {
	StorePath string `json:"storePath"`
	Reason    string `json:"reason"`
}
