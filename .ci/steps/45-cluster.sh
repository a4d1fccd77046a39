#!/usr/bin/env bash
# failover/: a three-node NATS cluster (nats-server v2.15.3, a tool of that
# module, built once with "go tool -n") whose nodes are killed with SIGKILL
# under QoS 1 and QoS 2 traffic, paho.mqtt.golang measured beside this
# client; and examples/cluster on the same binary (mqtttest's cluster
# helper is tested in the 20-mqtttest step). With CI set, a cluster that cannot start fails the step.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root/failover"
go vet ./...
staticcheck ./...
NATS_SERVER_BIN="$(go tool -n nats-server)"
export NATS_SERVER_BIN
go test -race -count=1 -timeout 8m -v -run 'TestClusterFailover' ./...
# examples/cluster: the runnable program, run briefly with one failover.
(cd "$root/examples/cluster" && go vet ./... && staticcheck ./... && go test -race -count=1 -v ./... 2>&1 | grep -v '^=== ')
