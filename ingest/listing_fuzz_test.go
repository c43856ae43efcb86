package ingest

import (
	"bytes"
	"encoding/json"
	"testing"
	"testing/iotest"
)

// FuzzCheckListing: the streaming listing check never panics, reads the
// same way in one-byte reads, and accepts nothing the reference (the
// whole-document json.Unmarshal check it replaced) refuses.
func FuzzCheckListing(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"root":{"type":"directory","entries":{"bin":{"type":"regular","size":72,"executable":true,"narOffset":400},"l":{"type":"symlink","target":"bin"}}}}`,
		`{"version":1,"root":null}`,
		`{"root":{},"version":1,"x":[1,2,{"y":"z"}]}`,
		`{"version":1,"root":{},"Version":2}`,
		`{"version":1,"version":null,"root":{}}`,
		`{"version":1e0,"root":{}}`,
		`{"version":1,"root":{}} x`,
		`[1]`,
		`{"version":1,"root":"\u0000\xff"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := checkListing(bytes.NewReader(data))
		err2 := checkListing(iotest.OneByteReader(bytes.NewReader(data)))
		if (err == nil) != (err2 == nil) {
			t.Fatalf("whole: %v, one byte at a time: %v", err, err2)
		}
		if err != nil {
			return
		}
		var ls struct {
			Version int             `json:"version"`
			Root    json.RawMessage `json:"root"`
		}
		if uerr := json.Unmarshal(data, &ls); uerr != nil || ls.Version != 1 || len(ls.Root) == 0 {
			t.Fatalf("accepted %q, which json.Unmarshal takes for version %d, root %q (%v)", data, ls.Version, ls.Root, uerr)
		}
	})
}
