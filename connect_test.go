package mqtt_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
)

// TestFakeConnectPacket checks every field of the CONNECT the client sends
// [MQTT-3.1.2-*]: client identifier, Clean Start, Keep Alive in seconds, the
// user name and password flags and fields, the will (topic, payload, QoS,
// retain) and, in MQTT 5.0, Receive Maximum, Session Expiry Interval,
// Maximum Packet Size, Topic Alias Maximum, Request Response Information,
// Request Problem Information and every will property (Will Delay Interval,
// Payload Format Indicator, Message Expiry Interval, Content Type, Response
// Topic, Correlation Data, User Properties in order with a duplicate key;
// MQTT 5.0 section 3.1.3.2).
func TestFakeConnectPacket(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version) {
		cfg := mqtt.Config{
			ClientID:   "dev-7",
			CleanStart: true,
			KeepAlive:  45 * time.Second,
			Username:   "alice",
			Password:   []byte("s3cret"),
			Will: &mqtt.Message{Topic: "dev/7/status", Payload: []byte("gone"), QoS: mqtt.AtLeastOnce,
				Retain: true, ContentType: "text/plain", PayloadUTF8: true, Expiry: 120 * time.Second,
				ResponseTopic: "dev/7/ask", CorrelationData: []byte{7},
				UserProperties: []mqtt.UserProperty{{Key: "k", Value: "1"}, {Key: "k", Value: "2"}}},
			WillDelay:           30 * time.Second,
			Version:             v,
			SessionExpiry:       90 * time.Second,
			ReceiveMaximum:      20,
			MaxPacketSize:       4096,
			TopicAliasMaximum:   5,
			RequestResponseInfo: true,
			NoProblemInfo:       true,
		}
		_, _, got := fakeClient(t, cfg, &packet.Connack{})
		want := &packet.Connect{
			Version:      wire,
			CleanStart:   true,
			KeepAlive:    45,
			ClientID:     "dev-7",
			Will:         &packet.Will{Topic: "dev/7/status", Payload: []byte("gone"), QoS: 1, Retain: true},
			UsernameFlag: true,
			Username:     "alice",
			PasswordFlag: true,
			Password:     []byte("s3cret"),
		}
		if wire == packet.V5 {
			want.Props.SessionExpiry = 90
			want.Props.Set(packet.PropSessionExpiry)
			want.Props.ReceiveMaximum = 20
			want.Props.Set(packet.PropReceiveMaximum)
			want.Props.MaximumPacketSize = 4096
			want.Props.Set(packet.PropMaximumPacketSize)
			want.Props.TopicAliasMaximum = 5
			want.Props.Set(packet.PropTopicAliasMaximum)
			want.Props.RequestResponseInfo = 1
			want.Props.Set(packet.PropRequestResponseInfo)
			want.Props.RequestProblemInfo = 0
			want.Props.Set(packet.PropRequestProblemInfo)
			wp := &want.Will.Props
			wp.ContentType = "text/plain"
			wp.Set(packet.PropContentType)
			wp.PayloadFormat = 1
			wp.Set(packet.PropPayloadFormat)
			wp.MessageExpiry = 120
			wp.Set(packet.PropMessageExpiry)
			wp.ResponseTopic = "dev/7/ask"
			wp.Set(packet.PropResponseTopic)
			wp.CorrelationData = []byte{7}
			wp.Set(packet.PropCorrelationData)
			wp.User = []packet.UserProperty{{Key: "k", Value: "1"}, {Key: "k", Value: "2"}}
			wp.WillDelay = 30
			wp.Set(packet.PropWillDelay)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("CONNECT (-want +got):\n%s", diff)
		}
	})
}

// TestFakeConnectPacketDefaults checks the CONNECT of a zero Config: no
// user name, password or will, Clean Start 0, Keep Alive 60 s, and in
// MQTT 5.0 no Session Expiry Interval (0, the session ends with the
// connection) but the default Receive Maximum 256 and Maximum Packet Size
// 16 MiB, and no Topic Alias Maximum (0: the broker may not use aliases).
func TestFakeConnectPacketDefaults(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version) {
		_, _, got := fakeClient(t, mqtt.Config{ClientID: "plain", Version: v}, &packet.Connack{})
		want := &packet.Connect{Version: wire, KeepAlive: 60, ClientID: "plain"}
		if wire == packet.V5 {
			want.Props.ReceiveMaximum = 256
			want.Props.Set(packet.PropReceiveMaximum)
			want.Props.MaximumPacketSize = 16 << 20
			want.Props.Set(packet.PropMaximumPacketSize)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("CONNECT (-want +got):\n%s", diff)
		}
	})
}

// TestFakeConnectKeepAliveDisabled checks that a negative KeepAlive sends
// Keep Alive 0, which turns the mechanism off (section 3.1.2.10), and that
// the client then never sends PINGREQ.
func TestFakeConnectKeepAliveDisabled(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, cp := fakeClient(t, mqtt.Config{ClientID: "k", Version: mqtt.Version5, KeepAlive: -1}, &packet.Connack{})
		if cp.KeepAlive != 0 {
			t.Errorf("CONNECT Keep Alive = %d, want 0", cp.KeepAlive)
		}
		fakeAdvance(24 * time.Hour)
		fc.expectNothing()
		if err := c.Err(); err != nil {
			t.Errorf("Err after a silent day = %v, want nil", err)
		}
	})
}

// TestFakeConnackRefused checks that a refusing CONNACK gives a
// *ConnectError carrying the reason code, no client, a closed connection and
// no credentials in the error.
func TestFakeConnackRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		v       mqtt.ProtocolVersion
		code    packet.ReasonCode
		version string
	}{
		{"v5/bad-user-or-password", mqtt.Version5, packet.BadUserNameOrPassword, "5.0"},
		{"v5/not-authorized", mqtt.Version5, packet.NotAuthorized, "5.0"},
		{"v311/not-authorized", mqtt.Version311, packet.RefusedNotAuthorized, "3.1.1"},
		{"v311/bad-user-or-password", mqtt.Version311, packet.RefusedBadUserNameOrPass, "3.1.1"},
		{"auto/server-unavailable", mqtt.VersionAuto, packet.ServerUnavailable, "5.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				b := fakebroker.New(t)
				res := fakeStartConnect(t, context.Background(), b, mqtt.Config{
					ClientID: "c", Version: tc.v, Username: "alice", Password: []byte("hunter2-secret"),
				})
				bc := fakeAccept(t, b, fakeTimeout)
				bc.ExpectConnect(t)
				bc.Send(t, &packet.Connack{ReasonCode: tc.code})
				c, err := fakeConnectDone(t, res, fakeTimeout)
				if c != nil {
					t.Fatalf("Connect returned a client with error %v", err)
				}
				var ce *mqtt.ConnectError
				if !errors.As(err, &ce) {
					t.Fatalf("Connect error = %v (%T), want a *mqtt.ConnectError", err, err)
				}
				want := mqtt.ConnectError{Server: b.URL(), Version: tc.version, Code: tc.code}
				if diff := cmp.Diff(want, *ce); diff != "" {
					t.Errorf("ConnectError (-want +got):\n%s", diff)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q reveals the password", err)
				}
				if got := bc.ExpectClosed(t); len(got) != 0 {
					t.Errorf("after the refusal the client sent %v", got)
				}
				synctest.Wait()
				if n := b.Pending(); n != 0 {
					t.Errorf("the client dialed %d more times after the refusal", n)
				}
			})
		})
	}
}

// TestFakeConnackReasonString checks that an MQTT 5.0 refusal's Reason
// String reaches the ConnectError.
func TestFakeConnackReasonString(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		b := fakebroker.New(t)
		res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "c", Version: mqtt.Version5})
		bc := fakeAccept(t, b, fakeTimeout)
		bc.ExpectConnect(t)
		ack := &packet.Connack{ReasonCode: packet.Banned}
		ack.Props.ReasonString = "too many attempts"
		ack.Props.Set(packet.PropReasonString)
		bc.Send(t, ack)
		_, err := fakeConnectDone(t, res, fakeTimeout)
		var ce *mqtt.ConnectError
		if !errors.As(err, &ce) || ce.Code != packet.Banned || ce.Reason != "too many attempts" {
			t.Fatalf("Connect error = %#v, want a ConnectError with code 0x8A and the reason string", err)
		}
	})
}

// TestFakeVersionFallback checks that VersionAuto sends an MQTT 5.0 CONNECT
// and, when the broker refuses the protocol version, redials with 3.1.1 and
// uses 3.1.1 on the new connection.
func TestFakeVersionFallback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		refuse func(t *testing.T, bc *fakebroker.Conn)
	}{
		{"v311-broker-return-code-1", func(t *testing.T, bc *fakebroker.Conn) {
			// What a 3.1.1-only broker answers to protocol level 5.
			bc.SendRaw(t, []byte{0x20, 0x02, 0x00, 0x01})
		}},
		{"v5-broker-reason-0x84", func(t *testing.T, bc *fakebroker.Conn) {
			bc.Send(t, &packet.Connack{ReasonCode: packet.UnsupportedProtocolVersion})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				b := fakebroker.New(t)
				res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "fb", KeepAlive: 30 * time.Second})
				bc1 := fakeAccept(t, b, fakeTimeout)
				if cp := bc1.ExpectConnect(t); cp.Version != packet.V5 {
					t.Fatalf("first CONNECT has protocol level %v, want 5.0", cp.Version)
				}
				tc.refuse(t, bc1)
				bc1.Close()
				bc2 := fakeAccept(t, b, fakeTimeout)
				cp := bc2.ExpectConnect(t)
				want := &packet.Connect{Version: packet.V311, KeepAlive: 30, ClientID: "fb"}
				if diff := cmp.Diff(want, cp); diff != "" {
					t.Errorf("second CONNECT (-want +got):\n%s", diff)
				}
				bc2.Send(t, &packet.Connack{})
				c, err := fakeConnectDone(t, res, fakeTimeout)
				if err != nil {
					t.Fatalf("Connect: %v", err)
				}
				if got := c.Connection().Version; got != mqtt.Version311 {
					t.Errorf("ProtocolVersion = %v, want Version311", got)
				}
				// The connection speaks 3.1.1: the fake broker decodes
				// with 3.1.1 rules.
				fc := fakeWatch(t, bc2, fakeTimeout)
				pub := c.PublishAsync(mqtt.Message{Topic: "a/b", Payload: []byte("x"), QoS: mqtt.AtLeastOnce})
				p := fc.expectPublish()
				if !p.Props.IsZero() {
					t.Errorf("PUBLISH on a 3.1.1 connection carries properties %+v", p.Props)
				}
				fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID})
				if err := pub.Wait(context.Background()); err != nil {
					t.Errorf("Publish: %v", err)
				}
			})
		})
	}
}

// TestFakeVersionPinnedNoFallback checks that a pinned Version5 reports the
// refusal instead of falling back to 3.1.1.
func TestFakeVersionPinnedNoFallback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		raw  []byte
		code packet.ReasonCode
	}{
		{"v311-broker-return-code-1", []byte{0x20, 0x02, 0x00, 0x01}, packet.RefusedProtocolVersion},
		{"v5-broker-reason-0x84", []byte{0x20, 0x03, 0x00, 0x84, 0x00}, packet.UnsupportedProtocolVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				b := fakebroker.New(t)
				res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "p", Version: mqtt.Version5})
				bc := fakeAccept(t, b, fakeTimeout)
				bc.ExpectConnect(t)
				bc.SendRaw(t, tc.raw)
				c, err := fakeConnectDone(t, res, fakeTimeout)
				var ce *mqtt.ConnectError
				if c != nil || !errors.As(err, &ce) || ce.Code != tc.code {
					t.Fatalf("Connect = %v, %v; want a ConnectError with code %v", c, err, tc.code)
				}
				bc.ExpectClosed(t)
				synctest.Wait()
				if n := b.Pending(); n != 0 {
					t.Errorf("a pinned Version5 client dialed again %d times", n)
				}
			})
		})
	}
}

// TestFakeConnackTimeout checks that Connect gives up exactly when
// ConnectTimeout expires if no CONNACK arrives, with an error that names the
// CONNACK and wraps context.DeadlineExceeded, and that it closes the
// connection.
func TestFakeConnackTimeout(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		b := fakebroker.New(t)
		start := time.Now()
		res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "slow", Version: v, ConnectTimeout: 5 * time.Second})
		bc := fakeAccept(t, b, fakeTimeout)
		bc.ExpectConnect(t)
		c, err := fakeConnectDone(t, res, fakeTimeout)
		if c != nil || err == nil {
			t.Fatalf("Connect = %v, %v; want an error", c, err)
		}
		if elapsed := time.Since(start); elapsed != 5*time.Second {
			t.Errorf("Connect returned after %v, want 5s (ConnectTimeout)", elapsed)
		}
		if !strings.Contains(err.Error(), "CONNACK") || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Connect error = %v; want it to mention CONNACK and wrap context.DeadlineExceeded", err)
		}
		bc.ExpectClosed(t)
		synctest.Wait()
		if n := b.Pending(); n != 0 {
			t.Errorf("the client dialed again %d times after the timeout", n)
		}
	})
}

// TestFakeConnackContextDeadline checks that the caller's ctx deadline
// bounds the CONNECT/CONNACK exchange when it is shorter than
// ConnectTimeout.
func TestFakeConnackContextDeadline(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		b := fakebroker.New(t)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		res := fakeStartConnect(t, ctx, b, mqtt.Config{ClientID: "slow", ConnectTimeout: time.Minute})
		bc := fakeAccept(t, b, fakeTimeout)
		bc.ExpectConnect(t)
		c, err := fakeConnectDone(t, res, fakeTimeout)
		if c != nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "CONNACK") {
			t.Fatalf("Connect = %v, %v; want an error mentioning CONNACK and wrapping DeadlineExceeded", c, err)
		}
		if elapsed := time.Since(start); elapsed != 2*time.Second {
			t.Errorf("Connect returned after %v, want 2s (the ctx deadline)", elapsed)
		}
		bc.ExpectClosed(t)
	})
}

// TestFakeConnackBrokerHangsUp checks that a broker closing the connection
// instead of answering gives a prompt error naming the CONNACK.
func TestFakeConnackBrokerHangsUp(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		b := fakebroker.New(t)
		start := time.Now()
		res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "c", Version: mqtt.Version5})
		bc := fakeAccept(t, b, fakeTimeout)
		bc.ExpectConnect(t)
		bc.Close()
		c, err := fakeConnectDone(t, res, fakeTimeout)
		if c != nil || err == nil || !strings.Contains(err.Error(), "CONNACK") {
			t.Fatalf("Connect = %v, %v; want an error mentioning CONNACK", c, err)
		}
		if elapsed := time.Since(start); elapsed != 0 {
			t.Errorf("Connect returned after %v, want at once", elapsed)
		}
	})
}

// TestFakeConnackNotFirst checks that a first packet other than CONNACK is a
// protocol violation [MQTT-3.2.0-1] and that no client is returned.
func TestFakeConnackNotFirst(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		v    mqtt.ProtocolVersion
		send packet.Packet
	}{
		{"v5/PINGRESP", mqtt.Version5, &packet.Pingresp{}},
		{"v311/PINGRESP", mqtt.Version311, &packet.Pingresp{}},
		{"v5/PUBLISH", mqtt.Version5, &packet.Publish{Topic: "a", Payload: []byte("early")}},
		{"v311/SUBACK", mqtt.Version311, &packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{0}}},
		{"v5/DISCONNECT", mqtt.Version5, &packet.Disconnect{ReasonCode: packet.ServerBusy}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				b := fakebroker.New(t)
				res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "c", Version: tc.v})
				bc := fakeAccept(t, b, fakeTimeout)
				bc.ExpectConnect(t)
				bc.Send(t, tc.send)
				c, err := fakeConnectDone(t, res, fakeTimeout)
				if c != nil || !errors.Is(err, mqtt.ErrProtocolViolation) {
					t.Fatalf("Connect = %v, %v; want an error wrapping ErrProtocolViolation", c, err)
				}
				if !strings.Contains(err.Error(), tc.send.Type().String()) {
					t.Errorf("error %q does not name the %v received", err, tc.send.Type())
				}
				bc.ExpectClosed(t)
			})
		})
	}
}

// TestFakeConnackMalformed checks that a CONNACK whose body breaks the rules
// is a protocol violation: session present with a refusal [MQTT-3.2.2-4]
// and reserved acknowledge flags [MQTT-3.2.2-1].
func TestFakeConnackMalformed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"session-present-with-refusal", []byte{0x20, 0x03, 0x01, 0x87, 0x00}},
		{"reserved-acknowledge-flags", []byte{0x20, 0x03, 0x02, 0x00, 0x00}},
		{"truncated-properties", []byte{0x20, 0x03, 0x00, 0x00, 0x05}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				b := fakebroker.New(t)
				res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "c", Version: mqtt.Version5})
				bc := fakeAccept(t, b, fakeTimeout)
				bc.ExpectConnect(t)
				bc.SendRaw(t, tc.raw)
				c, err := fakeConnectDone(t, res, fakeTimeout)
				if c != nil || !errors.Is(err, mqtt.ErrProtocolViolation) {
					t.Fatalf("Connect = %v, %v; want an error wrapping ErrProtocolViolation", c, err)
				}
				bc.ExpectClosed(t)
			})
		})
	}
}

// TestFakeSessionPresent checks that the CONNACK session-present flag
// [MQTT-3.2.2-2] is reported by SessionPresent.
func TestFakeSessionPresent(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		for _, present := range []bool{false, true} {
			c, _, _ := fakeClient(t, mqtt.Config{ClientID: "keep", Version: v}, &packet.Connack{SessionPresent: present})
			if got := c.SessionPresent(); got != present {
				t.Errorf("SessionPresent = %v, want %v", got, present)
			}
			if got := c.ClientID(); got != "keep" {
				t.Errorf("ClientID = %q, want the configured %q", got, "keep")
			}
		}
	})
}

// TestFakeAssignedClientID checks that an MQTT 5.0 broker's Assigned Client
// Identifier is reported by ClientID when the client sent an empty one.
func TestFakeAssignedClientID(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		ack := &packet.Connack{}
		ack.Props.AssignedClientID = "auto-9f2c"
		ack.Props.Set(packet.PropAssignedClientID)
		c, _, cp := fakeClient(t, mqtt.Config{Version: mqtt.Version5, CleanStart: true}, ack)
		if cp.ClientID != "" {
			t.Errorf("CONNECT client identifier = %q, want empty", cp.ClientID)
		}
		if got := c.ClientID(); got != "auto-9f2c" {
			t.Errorf("ClientID = %q, want the assigned %q", got, "auto-9f2c")
		}
		if got := c.Connection().Version; got != mqtt.Version5 {
			t.Errorf("ProtocolVersion = %v, want Version5", got)
		}
	})
}

// TestFakeConnectionDescribesWhatWasAgreed checks Client.Connection: what
// an MQTT 5.0 CONNACK announced (Server Keep Alive, Receive Maximum,
// Maximum Packet Size, Topic Alias Maximum, Maximum QoS, the features, an
// assigned Client ID, Response Information) next to what the client
// announced; and that a reconnection replaces it with what the new CONNACK
// says.
func TestFakeConnectionDescribesWhatWasAgreed(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		ack := &packet.Connack{}
		pr := &ack.Props
		pr.ServerKeepAlive, pr.ReceiveMaximum, pr.MaximumPacketSize, pr.TopicAliasMaximum = 20, 7, 4096, 3
		pr.MaximumQoS, pr.RetainAvailable, pr.SharedSubAvail = 1, 0, 0
		pr.AssignedClientID, pr.ResponseInfo = "assigned-1", "resp/1"
		for _, id := range []packet.PropID{packet.PropServerKeepAlive, packet.PropReceiveMaximum, packet.PropMaximumPacketSize,
			packet.PropTopicAliasMaximum, packet.PropMaximumQoS, packet.PropRetainAvailable, packet.PropSharedSubAvailable,
			packet.PropAssignedClientID, packet.PropResponseInfo} {
			pr.Set(id)
		}
		cfg := mqtt.Config{Version: mqtt.Version5, KeepAlive: time.Minute, ReceiveMaximum: 9, MaxPacketSize: 1 << 20,
			TopicAliasMaximum: 5, RequestResponseInfo: true, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, ack)
		start := time.Now()
		want := mqtt.Connection{Server: b.URL(), Version: mqtt.Version5, ClientID: "assigned-1", KeepAlive: 20 * time.Second,
			ReceiveMaximum: 7, ClientReceiveMaximum: 9, MaxPacketSize: 4096, ClientMaxPacketSize: 1 << 20,
			TopicAliasMaximum: 3, ClientTopicAliasMaximum: 5, MaximumQoS: mqtt.AtLeastOnce,
			WildcardSubscriptions: true, SubscriptionIdentifiers: true, ResponseInformation: "resp/1", Since: start}
		if diff := cmp.Diff(want, c.Connection()); diff != "" {
			t.Errorf("Connection (-want +got):\n%s", diff)
		}
		if c.ClientID() != "assigned-1" {
			t.Errorf("ClientID = %q", c.ClientID())
		}

		fakeRcDrop(t, c, fc)
		_, cp := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		if cp.ClientID != "assigned-1" {
			t.Errorf("the reconnection's CONNECT has Client ID %q, want the assigned one", cp.ClientID)
		}
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
		want = mqtt.Connection{Server: b.URL(), Version: mqtt.Version5, SessionPresent: true, ClientID: "assigned-1",
			KeepAlive: time.Minute, ReceiveMaximum: 65535, ClientReceiveMaximum: 9, MaxPacketSize: 268435460,
			ClientMaxPacketSize: 1 << 20, ClientTopicAliasMaximum: 5, MaximumQoS: mqtt.ExactlyOnce, RetainAvailable: true,
			WildcardSubscriptions: true, SharedSubscriptions: true, SubscriptionIdentifiers: true, Since: time.Now()}
		if diff := cmp.Diff(want, c.Connection()); diff != "" {
			t.Errorf("Connection after reconnecting (-want +got):\n%s", diff)
		}
	})
}

func TestMosquittoBadCredentialsRefused(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Users: map[string]string{"alice": "s3cret"}})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{b.URL()}, ClientID: uniqueID(t),
				Username: "alice", Password: []byte("wrong-password"), Version: ver.v})
			var ce *mqtt.ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("Connect = %v, %v; want *ConnectError", c, err)
			}
			want := mqtt.ReasonCode(0x86) // bad user name or password
			if ver.v == mqtt.Version311 {
				want = 4 // [MQTT-3.2.2.3] return code 4; mosquitto answers 5 (not authorized)
			}
			if ce.Code != want && ce.Code != 5 && ce.Code != 0x87 {
				t.Errorf("Code = %v, want %v (or not authorized)", ce.Code, want)
			}
			if msg := err.Error(); strings.Contains(msg, "wrong-password") {
				t.Errorf("error reveals the password: %s", msg)
			}
			good := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: uniqueID(t),
				Username: "alice", Password: []byte("s3cret"), Version: ver.v})
			if _, err := good.Ping(ctx); err != nil {
				t.Fatalf("Ping with good credentials: %v", err)
			}
		})
	}
}

func TestMosquittoWill(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			id := uniqueID(t)
			watcher := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-w", Version: ver.v})
			s, err := watcher.Subscribe(ctx, id+"/status", 1)
			if err != nil {
				t.Fatal(err)
			}
			will := &mqtt.Message{Topic: id + "/status", Payload: []byte("gone"), QoS: 1}

			// Disconnect is graceful: the broker discards the will [MQTT-3.1.2-10].
			graceful := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-g", Version: ver.v, Will: will})
			if err := graceful.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			expectNone(t, s.Messages(), 300*time.Millisecond)

			// Close drops the connection without DISCONNECT: the will is published [MQTT-3.1.2-8].
			abrupt := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-a", Version: ver.v, Will: will})
			if err := abrupt.Close(); err != nil {
				t.Fatal(err)
			}
			got := receive(t, s.Messages())
			if got.Topic != will.Topic || string(got.Payload) != "gone" {
				t.Fatalf("got %s %q, want the will", got.Topic, got.Payload)
			}
		})
	}
}

// TestFakeMalformedHeaderBeforeConnackRefused: a malformed fixed header where the
// CONNACK should be (reserved flag bits [MQTT-2.1.3-1], packet type 0, a
// Remaining Length over four bytes, a CONNACK larger than the client's
// Maximum Packet Size) makes Connect fail with the bare *packet.Error
// ("mqtt: waiting for CONNACK ...: %w" in Client.exchange, dial.go), which
// does not wrap ErrProtocolViolation; a malformed CONNACK body does.
// ErrProtocolViolation is documented as covering "a malformed or unexpected
// packet".
func TestFakeMalformedHeaderBeforeConnackRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"CONNACK-reserved-flags", []byte{0x21, 0x02, 0x00, 0x00}},
		{"type-0", []byte{0x00, 0x00}},
		{"remaining-length-5-bytes", []byte{0x20, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"larger-than-MaxPacketSize", append([]byte{0x20, 0x23, 0x00, 0x00, 0x20, 0x1f, 0x00, 0x1d}, "a reason string too long to fit"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				b := fakebroker.New(t)
				res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "b", Version: mqtt.Version5, MaxPacketSize: 32})
				bc := fakeAccept(t, b, fakeTimeout)
				bc.ExpectConnect(t)
				sent := fakeAsync(t, func() error { return bc.SendRawErr(tc.raw) })
				c, err := fakeConnectDone(t, res, fakeTimeout)
				if c != nil || !errors.Is(err, mqtt.ErrProtocolViolation) {
					t.Errorf("Connect = %v, %v; want an error wrapping ErrProtocolViolation", c, err)
				}
				bc.Close()
				sent.wait()
			})
		})
	}
}

// TestFakePasswordWithoutUserNameRefused311: with Version311, a Config with a
// Password and no Username makes Client.exchange (dial.go) send a CONNECT
// with the Password Flag set and the User Name Flag clear, which MQTT 3.1.1
// forbids [MQTT-3.1.2-22]; brokers close such a connection. The client
// should refuse the Config (an *ArgumentError before dialing) or leave the
// password out; VersionAuto falling back to 3.1.1 has the same problem.
func TestFakePasswordWithoutUserNameRefused311(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		b := fakebroker.New(t)
		res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "b", Version: mqtt.Version311, Password: []byte("pw")})
		synctest.Wait()
		if b.Pending() == 0 {
			_, err := fakeConnectDone(t, res, fakeTimeout)
			if !errors.Is(err, mqtt.ErrInvalidArgument) {
				t.Errorf("Connect = %v; want ErrInvalidArgument or a valid CONNECT", err)
			}
			return
		}
		bc := fakeAccept(t, b, fakeTimeout)
		p, err := bc.ReadErr()
		if err != nil {
			t.Errorf("the CONNECT is invalid: %v", err)
			bc.Close()
			fakeConnectDone(t, res, fakeTimeout)
			return
		}
		if cp := p.(*packet.Connect); cp.PasswordFlag && !cp.UsernameFlag {
			t.Errorf("CONNECT has the Password Flag without the User Name Flag [MQTT-3.1.2-22]")
		}
		bc.Send(t, &packet.Connack{})
		fakeConnectDone(t, res, fakeTimeout)
	})
}
