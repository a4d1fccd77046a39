package interop

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Credentials of the one user account every broker is started with. The
// brokers also accept anonymous clients, which most scenarios are.
const (
	testUser     = "alice"
	testPassword = "s3cret"
)

// broker is a running broker.
type broker struct {
	name    string // "mosquitto", "NATS", "RabbitMQ", "mochi-mqtt"
	version string // as the broker reports it, e.g. "2.0.11"
	url     string // mqtt://127.0.0.1:port
	user    string // a valid account, for the credentials scenario
	pass    string
	stop    func() error  // stops the broker
	log     func() string // the broker's log, for failure reports
}

// lazyBroker starts a broker the first time a test needs it and shares it
// with every later test of the binary; TestMain stops it.
type lazyBroker struct {
	name  string
	start func(dir string) (*broker, error)

	once sync.Once
	b    *broker
	err  error
	dir  string
}

// all lists every broker of the suite, so TestMain can stop those started.
var allBrokers []*lazyBroker

func newLazy(name string, start func(dir string) (*broker, error)) *lazyBroker {
	l := &lazyBroker{name: name, start: start}
	allBrokers = append(allBrokers, l)
	return l
}

// get returns the running broker, starting it on first use. A broker that
// cannot be started fails the test when CI is set and skips it otherwise.
func (l *lazyBroker) get(tb testing.TB) *broker {
	tb.Helper()
	l.once.Do(func() {
		began := time.Now()
		l.b, l.err = l.launch()
		if l.err == nil {
			fmt.Fprintf(os.Stderr, "interop: %s %s listening on %s (started in %v)\n",
				l.b.name, l.b.version, l.b.url, time.Since(began).Round(time.Millisecond))
		}
	})
	if l.err != nil {
		if os.Getenv("CI") == "" {
			tb.Skipf("%s cannot be started (set CI to make this a failure): %v", l.name, l.err)
		}
		tb.Fatalf("%s cannot be started: %v", l.name, l.err)
	}
	return l.b
}

func (l *lazyBroker) launch() (*broker, error) {
	dir, err := os.MkdirTemp("", "interop-")
	if err != nil {
		return nil, err
	}
	l.dir = dir
	var b *broker
	for range startAttempts {
		var run string
		if run, err = os.MkdirTemp(dir, "run-"); err != nil {
			break
		}
		b, err = l.start(run)
		if err == nil || !errors.Is(err, errStartup) {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return b, nil
}

// stopAll stops every broker that was started and removes its files.
func stopAll() error {
	var errs []error
	for _, l := range allBrokers {
		if l.b != nil {
			if err := l.b.stop(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", l.name, err))
			}
		}
		if l.dir != "" {
			os.RemoveAll(l.dir)
		}
	}
	return errors.Join(errs...)
}
