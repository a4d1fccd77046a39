package mqtt_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var versions = []struct {
	name string
	v    mqtt.ProtocolVersion
}{{"v311", mqtt.Version311}, {"v5", mqtt.Version5}}

func TestMosquittoPublishSubscribeEachQoS(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		for _, qos := range []mqtt.QoS{0, 1, 2} {
			t.Run(fmt.Sprintf("%s/qos%d", ver.name, qos), func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				id := uniqueID(t)
				sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: ver.v})
				pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: ver.v})
				if got := sub.ProtocolVersion(); got != ver.v {
					t.Fatalf("ProtocolVersion = %v, want %v", got, ver.v)
				}
				s, err := sub.Subscribe(ctx, id+"/+/temp", qos)
				if err != nil {
					t.Fatalf("Subscribe: %v", err)
				}
				if diff := cmp.Diff([]mqtt.FilterResult{{Filter: id + "/+/temp", Code: mqtt.ReasonCode(qos)}}, s.Granted()); diff != "" {
					t.Errorf("Granted (-want +got):\n%s", diff)
				}
				const n = 50
				for i := range n {
					m := mqtt.Message{Topic: fmt.Sprintf("%s/%d/temp", id, i), Payload: []byte(fmt.Sprint(i)), QoS: qos}
					if err := pub.Publish(ctx, m); err != nil {
						t.Fatalf("Publish %d: %v", i, err)
					}
				}
				for i := range n {
					got := receive(t, s.Messages())
					want := mqtt.Message{Topic: fmt.Sprintf("%s/%d/temp", id, i), Payload: []byte(fmt.Sprint(i)), QoS: qos}
					if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
						t.Fatalf("message %d (-want +got):\n%s", i, diff)
					}
				}
				if err := pub.Disconnect(ctx); err != nil {
					t.Errorf("Disconnect: %v", err)
				}
				if err := pub.Err(); !errors.Is(err, mqtt.ErrClosed) {
					t.Errorf("Err after Disconnect = %v, want ErrClosed", err)
				}
			})
		}
	}
}

func TestMosquittoPing(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	c := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: uniqueID(t)})
	rtt, err := c.Ping(testContext(t))
	if err != nil || rtt <= 0 || rtt > time.Second {
		t.Fatalf("Ping = %v, %v; want a positive round trip under 1 s", rtt, err)
	}
}
