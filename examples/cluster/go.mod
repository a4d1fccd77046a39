module github.com/b4e21b16/mqtt/examples/cluster

go 1.26.8

replace (
	github.com/b4e21b16/mqtt => ../..
	github.com/b4e21b16/mqtt/mqtttest => ../../mqtttest
	github.com/b4e21b16/mqtt/websocket => ../../websocket
)

tool github.com/nats-io/nats-server/v2

require (
	github.com/b4e21b16/mqtt v0.0.0
	github.com/b4e21b16/mqtt/mqtttest v0.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/antithesishq/antithesis-sdk-go v0.9.0-default-no-op // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/gorilla/websocket v1.5.0 // indirect
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/minio/highwayhash v1.0.4 // indirect
	github.com/mochi-mqtt/server/v2 v2.7.9 // indirect
	github.com/nats-io/jwt/v2 v2.8.3 // indirect
	github.com/nats-io/nats-server/v2 v2.15.3 // indirect
	github.com/nats-io/nkeys v0.4.17 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/rs/xid v1.4.0 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/time v0.16.0 // indirect
)
