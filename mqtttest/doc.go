// Package mqtttest helps test code that uses the MQTT client
// github.com/b4e21b16/mqtt: it runs a real broker inside the test process,
// connects clients that are closed when the test ends, breaks connections on
// purpose, and waits for messages and events with deadlines.
//
// A test starts a broker and a client in two lines:
//
//	func TestSensor(t *testing.T) {
//		b := mqtttest.NewBroker(t)
//		c := mqtttest.Connect(t, b.URL())
//		sub, err := c.Subscribe(ctx, "sensors/#", mqtt.AtLeastOnce)
//		...
//		m := mqtttest.WaitMessage(t, sub.Messages(), 5*time.Second)
//	}
//
// # Broker
//
// NewBroker starts mochi-mqtt (github.com/mochi-mqtt/server/v2) on a free
// port of 127.0.0.1 and stops it when the test ends. Options add a WebSocket
// listener (WithWebSocket), restrict the protocol version (WithVersion) or
// require credentials (WithUser). Start does the same outside a test.
//
// # Faults
//
// A FaultConn wraps a net.Conn; a Dialer, set as mqtt.Config.Dialer, wraps
// every connection a client opens. A test can then Cut a connection (both
// directions fail and the broker sees it close), Stall it (reads and writes
// wait, as on a network that drops everything, until Resume), delay every
// write, refuse new connections, and count bytes. FaultConn starts no
// goroutines.
//
// # Waiting
//
// WaitMessage, WaitMessages, ExpectNoMessage and WaitEvent wait on a
// client's channels with a deadline and fail the test with a message saying
// what did or did not arrive. None of them sleeps longer than needed.
//
// # Goroutine leaks
//
// Everything here stops its goroutines before the test's cleanup returns:
// clients from Connect are closed, and the broker's Close waits until the
// goroutines of the broker have exited. A test binary can therefore use
// goleak.VerifyTestMain. (The broker leaves two kinds of goroutines to end
// on their own after it stops; the last broker of the process to close
// waits, at most 5 seconds, until no goroutine runs broker code, so a
// program running mochi-mqtt servers of its own beside this package's may
// see that wait time out.) A goleak.VerifyNone deferred in the test function
// itself runs before the cleanups, while the broker still runs; use
// VerifyTestMain, or call VerifyNone in a cleanup registered before
// NewBroker.
package mqtttest
