// Package tmpdir keeps a process's temporary files in a folder nixrepo owns
// and clears what crashed processes left behind.
//
// Each process gets its own folder, ROOT/nixrepo-PID-RANDOM, and holds an
// exclusive flock(2) on the file .lock inside it for as long as it runs. The
// kernel drops the lock when the process ends, however it ends, so a folder
// whose lock can be taken belongs to no running process: Start removes
// such folders, and never one whose lock is held (a live process's, on
// this machine or on another sharing the folder). PIDs are only for
// people reading the folder names; a reused PID changes nothing.
//
// Start points TMPDIR at the process's folder, so everything that asks
// os.TempDir for a place lands there: upload spools, unpacked channel
// tarballs, and the temporary files of gocloud's fileblob, which offers no
// other way to choose their folder.
package tmpdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// systemTemp is the system's temporary folder as the process started with
// it, before Start moves TMPDIR.
var systemTemp = os.TempDir()

// lockName is the lock file inside each process's folder.
const lockName = ".lock"

// lockGrace: a folder without a lock file is being set up (the lock comes
// microseconds after the folder) unless it is older than this.
const lockGrace = time.Minute

// LegacyAge: temporary files that nixrepo versions without this package left
// in the system's temporary folder are removed once they are this old (no
// upload or unpack lasts a day).
const LegacyAge = 24 * time.Hour

var procDirRE = regexp.MustCompile(`^nixrepo-[0-9]+-[0-9]+$`)

// legacyRE matches what earlier versions created in the system's
// temporary folder: channel upload spools and unpack folders.
var legacyRE = regexp.MustCompile(`^nixrepo-(channel-[0-9]+\.tar\.xz|unpack-[0-9]+)$`)

// Dir is a process's own temporary folder.
type Dir struct {
	path    string
	lock    *os.File
	prev    string
	hadPrev bool
}

// Path is the folder.
func (d *Dir) Path() string { return d.path }

// Root returns the folder that holds the processes' folders: configured
// when set; else tmp beside storeDir (a file bucket's folder, so the
// bucket's renames stay on one file system and nothing temporary lands in
// the bucket); else, or when that cannot be created, nixrepo-UID in the
// system's temporary folder.
func Root(configured, storeDir string) (string, error) {
	if configured != "" {
		return configured, ensureDir(configured, false)
	}
	if storeDir != "" {
		beside := filepath.Join(filepath.Dir(filepath.Clean(storeDir)), "tmp")
		if ensureDir(beside, false) == nil {
			return beside, nil
		}
	}
	sys := filepath.Join(systemTemp, fmt.Sprintf("nixrepo-%d", os.Getuid()))
	return sys, ensureDir(sys, true)
}

// ensureDir creates dir (0700; missing parents 0755) if needed and checks that it is a folder,
// not a symlink. private (a folder in a shared, world-writable place)
// also requires that the process's user owns it and nobody else can enter.
func ensureDir(dir string, private bool) error {
	// Parents as any folder (they may be the store's too, served by a
	// web server as another user); the root itself private.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("temporary folder: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("temporary folder: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("temporary folder: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("temporary folder %s is not a folder (%v)", dir, fi.Mode().Type())
	}
	if !private {
		return nil
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("temporary folder %s belongs to user %d, not to this process's user %d; set [store] temp_dir", dir, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("temporary folder: %w", err)
		}
	}
	return nil
}

// Start clears root of the folders of processes that no longer run (and
// the system's temporary folder of what older versions left there, past
// LegacyAge), creates this process's folder in root, locks it and points
// TMPDIR at it. Close undoes all of it.
func Start(root string) (*Dir, error) {
	Sweep(root)
	SweepLegacy(systemTemp, LegacyAge)
	for range 3 {
		d, err := create(root)
		if errors.Is(err, errLost) {
			continue // a sweep took the new folder between mkdir and lock
		}
		if err != nil {
			return nil, err
		}
		d.prev, d.hadPrev = os.LookupEnv("TMPDIR")
		if err := os.Setenv("TMPDIR", d.path); err != nil {
			d.release()
			return nil, err
		}
		return d, nil
	}
	return nil, fmt.Errorf("temporary folder: could not lock a folder in %s", root)
}

var errLost = errors.New("lost the new folder to a sweep")

func create(root string) (*Dir, error) {
	dir, err := os.MkdirTemp(root, fmt.Sprintf("nixrepo-%d-*", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("temporary folder: %w", err)
	}
	lp := filepath.Join(dir, lockName)
	f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist) {
			return nil, errLost
		}
		return nil, fmt.Errorf("temporary folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLost
		}
		return nil, fmt.Errorf("temporary folder: lock %s: %w", lp, err)
	}
	// A sweep may have taken the lock, removed the folder and let go
	// before we locked: then our lock is on a file no longer there.
	fi, err1 := f.Stat()
	li, err2 := os.Lstat(lp)
	if err1 != nil || err2 != nil || !os.SameFile(fi, li) {
		f.Close()
		return nil, errLost
	}
	return &Dir{path: dir, lock: f}, nil
}

// Close removes the folder with everything in it, lets go of its lock and
// gives TMPDIR back its earlier value.
func (d *Dir) Close() error {
	if d == nil || d.lock == nil {
		return nil
	}
	if d.hadPrev {
		os.Setenv("TMPDIR", d.prev)
	} else {
		os.Unsetenv("TMPDIR")
	}
	return d.release()
}

func (d *Dir) release() error {
	err := os.RemoveAll(d.path)
	d.lock.Close()
	d.lock = nil
	return err
}

// Sweep removes the folders in root of processes that no longer run: those
// whose lock it can take, and those without a lock file older than a
// minute. It returns what it removed.
func Sweep(root string) []string {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range ents {
		if !e.IsDir() || !procDirRE.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if removeStale(dir) {
			removed = append(removed, dir)
		}
	}
	return removed
}

// removeStale removes dir if it belongs to no running process, holding
// its lock while it does, so that no process can take the folder over in
// between (see create).
func removeStale(dir string) bool {
	f, err := os.Open(filepath.Join(dir, lockName))
	if errors.Is(err, fs.ErrNotExist) {
		fi, err := os.Lstat(dir)
		return err == nil && time.Since(fi.ModTime()) > lockGrace && os.RemoveAll(dir) == nil
	}
	if err != nil {
		return false
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return false // held: the owner runs
	}
	return os.RemoveAll(dir) == nil
}

// SweepLegacy removes from dir the channel spools and unpack folders that
// nixrepo versions without this package created there, once older than
// age, and only the process's user's own. It returns what it removed.
func SweepLegacy(dir string, age time.Duration) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "nixrepo-") || !legacyRE.MatchString(name) {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil || time.Since(fi.ModTime()) < age || fi.Mode()&fs.ModeSymlink != 0 {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
			continue
		}
		if os.RemoveAll(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed
}
