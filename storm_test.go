package mqtt_test

import (
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
)

// TestMosquittoSharedClientIDNoStorm runs two clients with the same Client
// ID against mosquitto for 10 s with the default reconnection settings.
// Each connection takes the session from the other; reconnecting after
// MinDelay every time used to make them do so about 50 times in 10 s.
// mosquitto 2.0.11 closes the connection it takes the session from without
// a DISCONNECT reaching the client, on 3.1.1 and 5.0 alike (the fake-broker
// test TestFakeStormSessionTakenOver covers a DISCONNECT 0x8E): each such
// connection is shorter than HealthyAfter, so the backoff keeps doubling
// and the two make a dozen connections at most.
func TestMosquittoSharedClientIDNoStorm(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			id := uniqueID(t)
			cfg := mqtt.Config{Servers: []string{b.URL()}, ClientID: id, Version: ver.v}
			first := connect(t, cfg)
			second := connect(t, cfg)
			<-time.After(10 * time.Second)
			s1, s2 := first.Stats(), second.Stats()
			total := s1.Connects + s2.Connects
			t.Logf("%d connections in 10 s (%d + %d), %d + %d reconnect attempts",
				total, s1.Connects, s2.Connects, s1.ReconnectAttempts, s2.ReconnectAttempts)
			if total > 14 {
				t.Errorf("%d connections in 10 s by two clients sharing a Client ID; want at most 14", total)
			}
			if s1.ConnectionLosses == 0 || s1.ReconnectAttempts < s1.ConnectionLosses-1 {
				t.Errorf("first client's stats %+v: want its losses and attempts counted", s1)
			}
		})
	}
}
