package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/google/go-cmp/cmp"
)

// decodeLines decodes sub --json output, one object per line.
func decodeLines(t *testing.T, out string) []jsonMessage {
	t.Helper()
	var got []jsonMessage
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m jsonMessage
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %q is not a JSON message: %v", line, err)
		}
		got = append(got, m)
	}
	return got
}

// settleExpiry checks that a received message expiry is what was sent, give
// or take the second the broker may have counted down, and sets it to sent.
func settleExpiry(t *testing.T, msgs []jsonMessage, sent int64) {
	t.Helper()
	for _, m := range msgs {
		if p := m.Properties; p != nil && p.MessageExpiry != 0 {
			if p.MessageExpiry < sent-2 || p.MessageExpiry > sent {
				t.Errorf("message expiry %d, want about %d", p.MessageExpiry, sent)
			}
			p.MessageExpiry = sent
		}
	}
}

// TestSubJSON receives, with sub --json over MQTT 5.0, a retained message,
// a message with every MQTT 5.0 property and a binary payload, all sent by
// mosquitto_pub.
func TestSubJSON(t *testing.T) {
	t.Parallel()
	mosquittoPub := tool(t, "mosquitto_pub")
	b := startBroker(t, brokertest.Options{})
	host, port := hostPort(t, b.Addr())
	binary := []byte{0xff, 0x00, 0x01, 'x'}
	file := filepath.Join(t.TempDir(), "binary")
	if err := os.WriteFile(file, binary, 0o600); err != nil {
		t.Fatal(err)
	}

	runTool(t, mosquittoPub, "-h", host, "-p", port, "-t", "cli/json/retained", "-m", "kept", "-r", "-q", "1")
	sub := start(t, "sub", "-h", host, "-p", port, "-V", "mqttv5", "-t", "cli/json/#", "-q", "2", "-C", "3", "--json", "-d")
	sub.stderr.waitFor(t, "subscribed to cli/json/#", sub.done)
	runTool(t, mosquittoPub, "-h", host, "-p", port, "-V", "mqttv5", "-t", "cli/json/props", "-m", "héllo", "-q", "2",
		"-D", "publish", "content-type", "text/plain",
		"-D", "publish", "response-topic", "cli/json/reply",
		"-D", "publish", "correlation-data", "req-1",
		"-D", "publish", "payload-format-indicator", "1",
		"-D", "publish", "message-expiry-interval", "100",
		"-D", "publish", "user-property", "k1", "v1",
		"-D", "publish", "user-property", "k1", "v2")
	runTool(t, mosquittoPub, "-h", host, "-p", port, "-V", "mqttv5", "-t", "cli/json/binary", "-f", file, "-q", "1")
	if code := sub.wait(t); code != exitOK {
		t.Fatalf("exit status %d; stderr:\n%s", code, sub.stderr)
	}
	got := decodeLines(t, sub.stdout.String())
	settleExpiry(t, got, 100)
	want := []jsonMessage{
		{Topic: "cli/json/retained", Payload: "kept", QoS: 1, Retain: true},
		{Topic: "cli/json/props", Payload: "héllo", QoS: 2, Properties: &jsonProperties{
			ContentType:     "text/plain",
			ResponseTopic:   "cli/json/reply",
			CorrelationData: "req-1",
			PayloadUTF8:     true,
			MessageExpiry:   100,
			UserProperties:  []jsonUserProp{{"k1", "v1"}, {"k1", "v2"}},
		}},
		{Topic: "cli/json/binary", Payload: base64.StdEncoding.EncodeToString(binary), Encoding: "base64", QoS: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sub --json output differs (-want +got):\n%s", diff)
	}
}

// TestPubPropertiesJSON publishes MQTT 5.0 properties with mqtt pub and
// receives them with sub --json; a 3.1.1 subscriber gets the message
// without them.
func TestPubPropertiesJSON(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokertest.Options{})
	host, port := hostPort(t, b.Addr())
	sub5 := start(t, "sub", "-h", host, "-p", port, "-V", "5", "-t", "cli/props", "-q", "1", "-C", "1", "--json", "-d")
	sub311 := start(t, "sub", "-h", host, "-p", port, "-V", "311", "-t", "cli/props", "-q", "1", "-C", "1", "--json", "-d")
	sub5.stderr.waitFor(t, "subscribed to", sub5.done)
	sub311.stderr.waitFor(t, "subscribed to", sub311.done)
	r := cli(t, "", "pub", "-h", host, "-p", port, "-V", "5", "-t", "cli/props", "-m", "{}", "-q", "1",
		"--content-type", "application/json", "--response-topic", "cli/reply", "--correlation-data", "\xfe\xff",
		"--user-property", "a=1", "--user-property", "b=x=y", "--message-expiry", "60", "--payload-utf8")
	if r.code != exitOK {
		t.Fatalf("pub: exit status %d; stderr:\n%s", r.code, r.stderr)
	}
	for _, s := range []*background{sub5, sub311} {
		if code := s.wait(t); code != exitOK {
			t.Fatalf("sub: exit status %d; stderr:\n%s", code, s.stderr)
		}
	}
	got := decodeLines(t, sub5.stdout.String())
	settleExpiry(t, got, 60)
	want := []jsonMessage{{Topic: "cli/props", Payload: "{}", QoS: 1, Properties: &jsonProperties{
		ContentType:         "application/json",
		ResponseTopic:       "cli/reply",
		CorrelationData:     base64.StdEncoding.EncodeToString([]byte("\xfe\xff")),
		CorrelationEncoding: "base64",
		PayloadUTF8:         true,
		MessageExpiry:       60,
		UserProperties:      []jsonUserProp{{"a", "1"}, {"b", "x=y"}},
	}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("MQTT 5.0 subscriber (-want +got):\n%s", diff)
	}
	want311 := []jsonMessage{{Topic: "cli/props", Payload: "{}", QoS: 1}}
	if diff := cmp.Diff(want311, decodeLines(t, sub311.stdout.String())); diff != "" {
		t.Errorf("MQTT 3.1.1 subscriber (-want +got):\n%s", diff)
	}
}
