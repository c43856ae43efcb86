package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	azblobblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/smithy-go"
)

// Mutable objects (channel.json, the current channel tarball,
// nix-cache-info, the catalog manifest, …) change by compare-and-swap: a
// writer reads the object and its version, decides the new content, and
// writes it only if the object still has that version; on a conflict it
// reads again and decides again. docs/concurrency.md has the protocol.

// ErrUnchanged, returned by an Update function, leaves the object as it is.
var ErrUnchanged = errors.New("unchanged")

// ErrConflict reports a compare-and-swap that kept losing to other writers
// until its context ended or its attempts ran out.
var ErrConflict = errors.New("concurrent update")

// Conditional writes a backend supports.
type Conditional int

const (
	// CondNone: the backend offers no conditional writes; nixrepo
	// serialises writers within this process only.
	CondNone Conditional = iota
	// CondProcess: the bucket lives in this process (mem://), where one
	// lock serialises every writer.
	CondProcess
	// CondFolder: a folder; write-once by link(2), compare-and-swap under
	// flock(2), both across processes.
	CondFolder
	// CondETag: an object store with If-None-Match and If-Match (S3 and
	// S3-compatible servers, Azure Blob).
	CondETag
	// CondGeneration: Google Cloud Storage generation preconditions.
	CondGeneration
)

func (c Conditional) String() string {
	switch c {
	case CondProcess:
		return "in-process lock"
	case CondFolder:
		return "link(2) and flock(2) on the folder"
	case CondETag:
		return "If-None-Match / If-Match on the ETag"
	case CondGeneration:
		return "generation preconditions"
	}
	return "none"
}

// Conditional says how the store makes write-once and compare-and-swap
// writes atomic. With CondNone, Warning explains what nixrepo does
// instead.
func (s *Store) Conditional() Conditional { return s.cond }

// Warning is a sentence an operator should see at start, or "".
func (s *Store) Warning() string {
	if s.cond != CondNone {
		return ""
	}
	return fmt.Sprintf("store %s: this backend offers no conditional writes, so write-once objects and compare-and-swap updates are atomic only within this process; run one nixrepo process that writes this store at a time", s.url)
}

func conditionalOf(u *url.URL) Conditional {
	switch u.Scheme {
	case "file":
		return CondFolder
	case "mem":
		return CondProcess
	case "s3", "azblob":
		return CondETag
	case "gs":
		return CondGeneration
	}
	return CondNone
}

// version identifies one state of an object for a conditional write.
type version struct {
	exists     bool
	etag       string
	generation int64
}

// Update changes key by compare-and-swap. fn gets the current content (nil
// when the object does not exist) and returns the new content, or
// ErrUnchanged to leave it, or another error to stop. When another writer
// changed the object in between, Update reads it again and calls fn again
// (fn must not have side effects beyond its result). The new content is
// written with opts (IfNotExist is implied when the object was absent).
func (s *Store) Update(ctx context.Context, key string, opts *WriteOptions, fn func(old []byte) ([]byte, error)) error {
	switch s.cond {
	case CondFolder:
		unlock, err := s.lockFolderKey(ctx, key)
		if err != nil {
			return err
		}
		defer unlock()
		return s.updateLocked(ctx, key, opts, fn)
	case CondProcess, CondNone:
		s.casMu.Lock()
		defer s.casMu.Unlock()
		return s.updateLocked(ctx, key, opts, fn)
	}
	for attempt := 0; ; attempt++ {
		v, old, err := s.readVersion(ctx, key)
		if err != nil {
			return err
		}
		data, err := fn(old)
		if errors.Is(err, ErrUnchanged) {
			return nil
		}
		if err != nil {
			return err
		}
		err = s.putIfVersion(ctx, key, data, opts, v)
		if err == nil || !errors.Is(err, errVersionMismatch) {
			return err
		}
		if attempt >= 100 {
			return fmt.Errorf("update %s: %w (gave up after %d attempts)", key, ErrConflict, attempt+1)
		}
		// Back off a little, randomly, so racing writers spread out.
		d := time.Duration(1+rand.IntN(1<<min(attempt, 6))) * time.Millisecond
		select {
		case <-ctx.Done():
			return fmt.Errorf("update %s: %w", key, ctx.Err())
		case <-time.After(d):
		}
	}
}

// updateLocked is Update for backends where a lock already excludes every
// other writer of key.
func (s *Store) updateLocked(ctx context.Context, key string, opts *WriteOptions, fn func(old []byte) ([]byte, error)) error {
	old, err := s.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		old, err = nil, nil
	}
	if err != nil {
		return err
	}
	data, err := fn(old)
	if errors.Is(err, ErrUnchanged) {
		return nil
	}
	if err != nil {
		return err
	}
	o := WriteOptions{}
	if opts != nil {
		o = *opts
	}
	o.IfNotExist = false
	return s.Put(ctx, key, data, &o)
}

var errVersionMismatch = errors.New("the object changed")

// readVersion reads key and the version it has. The version is taken
// before the content: if the object changes in between, the conditional
// write on that older version fails and the update starts over, so the
// content a decision is based on is never older than the version.
func (s *Store) readVersion(ctx context.Context, key string) (version, []byte, error) {
	a, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		err = wrap("stat", key, err)
		if errors.Is(err, ErrNotFound) {
			return version{}, nil, nil
		}
		return version{}, nil, err
	}
	v := version{exists: true, etag: a.ETag}
	if s.cond == CondGeneration {
		var oa storage.ObjectAttrs
		if !a.As(&oa) {
			return version{}, nil, fmt.Errorf("stat %s: no generation", key)
		}
		v.generation = oa.Generation
	}
	if v.etag == "" && s.cond == CondETag {
		return version{}, nil, fmt.Errorf("stat %s: the service returned no ETag", key)
	}
	data, err := s.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		// Deleted in between: the write below must then find it absent.
		return version{}, nil, nil
	}
	return v, data, err
}

// putIfVersion writes key only if it still has version v (or, for an
// absent v, still does not exist).
func (s *Store) putIfVersion(ctx context.Context, key string, data []byte, opts *WriteOptions, v version) error {
	wo := opts.blob()
	wo.IfNotExist = !v.exists
	if v.exists {
		wo.BeforeWrite = func(as func(any) bool) error {
			switch s.cond {
			case CondETag:
				var in *transfermanager.UploadObjectInput
				if as(&in) {
					in.IfMatch = &v.etag
					return nil
				}
				var ao *azblob.UploadStreamOptions
				if as(&ao) {
					etag := azcore.ETag(v.etag)
					ao.AccessConditions = &azblob.AccessConditions{ModifiedAccessConditions: &azblobblob.ModifiedAccessConditions{IfMatch: &etag}}
					return nil
				}
			case CondGeneration:
				var obj **storage.ObjectHandle
				if as(&obj) {
					*obj = (*obj).If(storage.Conditions{GenerationMatch: v.generation})
					return nil
				}
			}
			return fmt.Errorf("write %s: the driver does not expose conditional writes", key)
		}
	}
	err := s.bucket.WriteAll(ctx, key, data, wo)
	if err == nil {
		return nil
	}
	if isConditionFailure(err) {
		return fmt.Errorf("write %s: %w", key, errVersionMismatch)
	}
	return wrap("write", key, err)
}

// isConditionFailure: a precondition failed (412, or S3's 409
// ConditionalRequestConflict when two conditional writes overlap).
func isConditionFailure(err error) bool {
	if errors.Is(wrap("", "", err), ErrExists) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	return strings.Contains(err.Error(), "ConditionNotMet")
}

// Sync makes every write so far durable: on a folder it flushes the file
// system (syncfs(2)); an object store has made a write durable when it
// acknowledged it.
func (s *Store) Sync(ctx context.Context) error {
	if s.dir == "" {
		return nil
	}
	return s.folderSync()
}
