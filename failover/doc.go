// Package failover tests the client against a three-node NATS cluster
// whose nodes are killed with SIGKILL under load, and measures how long
// this client and paho.mqtt.golang take to recover from each failover.
//
// It is a module of its own: nats-server (a tool dependency, run from
// "go tool nats-server") and paho.mqtt.golang stay out of the client's
// module. Run it with
//
//	go test -race .
//
// and see TestClusterFailover's flags for a longer run.
package failover
