package mqtttest_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/mqtttest"
)

// natsServer finds the nats-server of this repository's failover module
// (its tool dependency) when NATS_SERVER_BIN is not set, building it once.
var natsServer = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("NATS_SERVER_BIN"); p != "" {
		return p, nil
	}
	out, err := exec.Command("go", "-C", "../failover", "tool", "-n", "nats-server").Output()
	if err != nil {
		return "", fmt.Errorf("go tool -n nats-server in ../failover: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
})

func clusterConfig(tb testing.TB) mqtttest.ClusterConfig {
	tb.Helper()
	bin, err := natsServer()
	if err != nil {
		if os.Getenv("CI") == "" {
			tb.Skip(err)
		}
		tb.Fatal(err)
	}
	return mqtttest.ClusterConfig{Server: bin}
}

// TestClusterKillRestart: a persistent session created on one node
// survives the SIGKILL of that node; the client resumes it on another node
// and receives the message published while it was away.
func TestClusterKillRestart(t *testing.T) {
	t.Parallel()
	cl := mqtttest.NewCluster(t, clusterConfig(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cfg := mqtt.Config{Servers: cl.URLs(), ClientID: "kill-restart", Version: mqtt.Version311}
	sub, err := mqtt.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	s, err := sub.Subscribe(ctx, "cluster/t", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	node := cl.Node(sub.Connection().Server)
	if node < 0 {
		t.Fatalf("connected to %q, not a node of %v", sub.Connection().Server, cl.URLs())
	}
	if err := cl.Kill(node); err != nil {
		t.Fatal(err)
	}
	// The surviving nodes may hold a CONNECT while they elect new leaders,
	// and close it after their JetStream timeout: try until one answers.
	var others []string
	for i, u := range cl.URLs() {
		if i != node {
			others = append(others, u)
		}
	}
	pub := connectRetrying(t, ctx, mqtt.Config{Servers: others, ClientID: "kill-restart-pub", Version: mqtt.Version311})
	if err := pub.Publish(ctx, mqtt.Message{Topic: "cluster/t", Payload: []byte("while away"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	m := mqtttest.WaitMessage(t, s.Messages(), 30*time.Second)
	if string(m.Payload) != "while away" || !sub.SessionPresent() {
		t.Errorf("got %q, session present %v; want the message and the resumed session", m.Payload, sub.SessionPresent())
	}
	if err := cl.Restart(node); err != nil {
		t.Fatal(err)
	}
	if !cl.Running(node) {
		t.Errorf("node %d not running after Restart", node)
	}
}

// connectRetrying connects with cfg, trying again until ctx ends.
func connectRetrying(t *testing.T, ctx context.Context, cfg mqtt.Config) *mqtt.Client {
	t.Helper()
	for {
		c, err := mqtt.Connect(ctx, cfg)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		t.Logf("connect: %v; trying again", err)
		select {
		case <-ctx.Done():
			t.Fatalf("connect: %v", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// A cluster started outside a test: the client is given every node, the
// node it uses is killed, and it carries on on another one with its
// session. (Not run by go test: it needs nats-server, see ClusterConfig.)
func ExampleStartCluster() {
	cl, err := mqtttest.StartCluster(mqtttest.ClusterConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: cl.URLs(), ClientID: "example", Version: mqtt.Version311})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Subscribe(ctx, "orders/#", mqtt.AtLeastOnce); err != nil {
		log.Fatal(err)
	}
	node := cl.Node(c.Connection().Server)
	if err := cl.Kill(node); err != nil {
		log.Fatal(err)
	}
	for e := range c.Events() {
		if e.Kind == mqtt.EventConnected {
			fmt.Println("resumed on another node:", e.SessionPresent && cl.Node(e.Server) != node)
			break
		}
	}
	if err := cl.Restart(node); err != nil {
		log.Fatal(err)
	}
}
