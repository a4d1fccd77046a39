//go:build unix

package filestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// openLocked opens (or creates) the file at path and takes an exclusive
// flock on it.
func openLocked(path string) (*os.File, error) {
	for attempt := 0; ; attempt++ {
		f, err := openLog(path)
		if errors.Is(err, fs.ErrNotExist) && attempt < 100 {
			continue // removed between our two attempts to open it
		}
		if err != nil {
			return nil, err
		}
		if err := flock(f); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("filestore: %s is in use by another file store (in this or another process): %w", path, err)
			}
			return nil, fmt.Errorf("filestore: failed to lock %s: %w", path, err)
		}
		// The previous holder may have compacted, renaming a new file over
		// path, between our open and our lock: then we hold the lock of a
		// file that is no longer the store. Try again with the new one.
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(path)
		if err := errors.Join(err1, err2); err != nil {
			closeLog(f)
			return nil, fmt.Errorf("filestore: failed to open %s: %w", path, err)
		}
		if os.SameFile(fi, pi) {
			return f, nil
		}
		closeLog(f)
		if attempt == 100 {
			return nil, fmt.Errorf("filestore: failed to open %s: it keeps being replaced", path)
		}
	}
}

// openLog opens the regular file at path for reading and writing, or
// creates it (exclusively, mode 0600 whatever the umask) if there is none.
// It does not follow a symbolic link at path: the log must be a file of its
// own, since compaction replaces whatever is at path with a new file. An
// error matching fs.ErrNotExist means the file disappeared between the
// attempt to create it and the attempt to open it.
func openLog(path string) (*os.File, error) {
	f, err := createExclusive(path)
	if errors.Is(err, fs.ErrExist) {
		f, err = os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	}
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("filestore: %s is a symbolic link; the store needs a regular file of its own: %w", path, err)
		}
		return nil, fmt.Errorf("filestore: failed to open %s: %w", path, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("filestore: %s is not a regular file (%v)", path, fi.Mode().Type())
		} else {
			err = fmt.Errorf("filestore: failed to open %s: %w", path, err)
		}
		return nil, err
	}
	return f, nil
}

// createExclusive creates a new file at path for reading and writing, with
// mode 0600 whatever the umask. It fails (matching fs.ErrExist) if anything
// is at path already, a symbolic link included: it never follows one.
func createExclusive(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	// The umask may have taken more than group and other access away; a
	// log its owner cannot write could not be opened again.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// flock takes an exclusive lock on f without waiting.
func flock(f *os.File) error { return flockOp(f, syscall.LOCK_EX|syscall.LOCK_NB) }

// closeLog releases the lock on f and closes it. The lock belongs to the
// open file description, which a child process forked at that moment
// shares until it calls exec: closing f alone would leave the lock held
// until then, and reopening the store at once could fail as if another
// Store had it.
func closeLog(f *os.File) error {
	flockOp(f, syscall.LOCK_UN) // on failure, closing releases it anyway
	return f.Close()
}

// flockOp applies flock(2) operation op to f.
func flockOp(f *os.File, op int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), op)
			if ferr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return ferr
}

// syncDir makes the directory entries in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
