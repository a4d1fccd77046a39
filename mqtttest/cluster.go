package mqtttest

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/internal/brokertest"
)

// ClusterConfig configures a NATS cluster started by NewCluster or
// StartCluster. The zero value gives three nodes with the MQTT streams
// replicated on all three.
type ClusterConfig struct {
	// Nodes is the number of servers (default 3).
	Nodes int
	// Server is the nats-server executable. Empty: the environment
	// variable NATS_SERVER_BIN, then the tool of the Go module in the
	// working directory, found with "go tool -n nats-server" (which
	// builds it once and caches it). Add it to your test module with
	//
	//	go get -tool github.com/nats-io/nats-server/v2@v2.15.3
	//
	// Debian's nats-server 2.9 is too old: it has no MQTT QoS 2 and loses
	// stored messages when a consumer leader changes.
	Server string
	// JSAPITimeout is how long a node waits for JetStream while serving an
	// MQTT client before it closes the client's connection (the mqtt
	// block's js_api_timeout; default the server's, 5 s).
	JSAPITimeout time.Duration
	// AckWait is how long a node waits for a PUBACK before it sends a
	// QoS 1 message again (default the server's, 30 s).
	AckWait time.Duration
}

// Cluster is a NATS cluster: nats-server processes on free ports of
// 127.0.0.1 joined by routes, each with JetStream (in a temporary
// directory) and an MQTT 3.1.1 listener whose sessions and messages are
// replicated on every node (stream_replicas), so that a session survives
// the death of the node its client was connected to. A test points a
// client at every node (mqtt.Config.Servers = URLs()), kills the node it is
// connected to with Kill and brings it back with Restart. Methods may be
// called from several goroutines.
type Cluster struct {
	c   *brokertest.Cluster
	dir string // removed by Close: the directory StartCluster made
}

// NewCluster starts a cluster, waits until every node serves MQTT (a few
// seconds) and stops it when the test ends. When nats-server cannot be
// found the test is skipped, or fails if the environment variable CI is
// set.
func NewCluster(tb testing.TB, cfg ClusterConfig) *Cluster {
	tb.Helper()
	return &Cluster{c: brokertest.StartCluster(tb, cfg.options())}
}

// StartCluster starts a cluster outside a test, in a new temporary
// directory, for a TestMain, an example or a program; Close stops it and
// removes the directory.
func StartCluster(cfg ClusterConfig) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "mqtttest-cluster")
	if err != nil {
		return nil, err
	}
	c, err := brokertest.LaunchCluster(dir, cfg.options())
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("mqtttest: %w", err)
	}
	return &Cluster{c: c, dir: dir}, nil
}

func (cfg ClusterConfig) options() brokertest.ClusterOptions {
	return brokertest.ClusterOptions{Nodes: cfg.Nodes, Server: cfg.Server, JSAPITimeout: cfg.JSAPITimeout, AckWait: cfg.AckWait}
}

// URLs returns every node's MQTT URL ("mqtt://127.0.0.1:port"), in node
// order.
func (c *Cluster) URLs() []string { return c.c.URLs() }

// Node returns the index of the node whose MQTT URL is url (as in
// mqtt.Client.Connection().Server), or -1.
func (c *Cluster) Node(url string) int {
	if n := c.c.NodeOf(url); n != nil {
		return n.Index()
	}
	return -1
}

// Kill kills node i with SIGKILL and waits for the process to exit.
func (c *Cluster) Kill(i int) error { return c.c.Node(i).Kill() }

// Restart starts node i again with its ports and JetStream directory and
// waits until it has caught up with the cluster and serves MQTT.
func (c *Cluster) Restart(i int) error { return c.c.Node(i).Restart() }

// Running reports whether node i is up.
func (c *Cluster) Running(i int) bool { return c.c.Node(i).Running() }

// Log returns what node i has logged so far.
func (c *Cluster) Log(i int) string { return c.c.Node(i).Log() }

// Close stops every node. After StartCluster it also removes the
// directory; after NewCluster the test's cleanup calls it.
func (c *Cluster) Close() error {
	err := c.c.Close()
	if c.dir != "" {
		err = errors.Join(err, os.RemoveAll(c.dir))
	}
	return err
}
