package brokertest

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
)

// Launch starts a broker outside any test, for a TestMain that shares one
// broker with runnable examples. The returned stop function stops the broker,
// removes its directory and reports anything that went wrong.
func Launch(opts Options) (b *Broker, stop func() error, err error) {
	dir, err := os.MkdirTemp("", "brokertest")
	if err != nil {
		return nil, nil, err
	}
	tb := &mainTB{dir: dir}
	b, err = newBroker(tb, opts)
	if err == nil {
		err = b.startNew()
	}
	stop = func() error {
		if b != nil {
			b.cleanup(tb)
		}
		tb.runCleanups()
		os.RemoveAll(dir)
		return tb.err()
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	return b, stop, nil
}

// mainTB adapts the helper's testing.TB needs (temporary directory,
// cleanups, error reports) for use from TestMain. Methods it does not
// override are not used by this package.
type mainTB struct {
	testing.TB
	dir string

	mu       sync.Mutex
	cleanups []func()
	errs     []error
}

func (t *mainTB) Helper()          {}
func (t *mainTB) TempDir() string  { return t.dir }
func (t *mainTB) Cleanup(f func()) { t.mu.Lock(); t.cleanups = append(t.cleanups, f); t.mu.Unlock() }
func (t *mainTB) Errorf(f string, a ...any) {
	t.mu.Lock()
	t.errs = append(t.errs, fmt.Errorf(f, a...))
	t.mu.Unlock()
}

func (t *mainTB) runCleanups() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func (t *mainTB) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(t.errs...)
}
