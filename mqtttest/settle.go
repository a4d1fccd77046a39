package mqtttest

import (
	"bytes"
	"runtime"
	"sync"
	"time"
)

// The broker ends two of its goroutines without waiting for them: the
// event loop of the server, and the writing goroutine of each client, which
// return shortly after the server and the client were stopped. So that a
// leak check right after a test finds none, the last broker of this package
// to close waits until no goroutine of the process is running broker code.
// While other brokers run, their goroutines cannot be told apart, and the
// wait is left to the last one.

// settleTimeout bounds that wait.
const settleTimeout = 5 * time.Second

// brokerCode marks broker functions in a goroutine dump.
var brokerCode = []byte("github.com/mochi-mqtt/server/v2")

var live struct {
	mu sync.Mutex
	n  int // brokers started and not yet closed
}

// brokerRun is one started broker, for registerBroker.
type brokerRun struct{ once sync.Once }

// registerBroker counts a broker as running until done is called.
func registerBroker() *brokerRun {
	live.mu.Lock()
	live.n++
	live.mu.Unlock()
	return new(brokerRun)
}

// done counts the broker as closed and, if it was the last, waits for the
// broker's goroutines to exit (at most settleTimeout).
func (r *brokerRun) done() {
	r.once.Do(func() {
		live.mu.Lock()
		live.n--
		last := live.n == 0
		live.mu.Unlock()
		if last {
			settle()
		}
	})
}

// settle polls the goroutine dump until no goroutine runs broker code, no
// other broker was started meanwhile, or settleTimeout has passed.
func settle() {
	deadline := time.Now().Add(settleTimeout)
	wait := 100 * time.Microsecond
	buf := make([]byte, 64<<10)
	for time.Now().Before(deadline) {
		live.mu.Lock()
		others := live.n
		live.mu.Unlock()
		if others > 0 {
			return
		}
		n := runtime.Stack(buf, true)
		if n == len(buf) && len(buf) < 16<<20 {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if !bytes.Contains(buf[:n], brokerCode) {
			return
		}
		time.Sleep(wait)
		wait = min(2*wait, 10*time.Millisecond)
	}
}
