module github.com/b4e21b16/mqtt/mqtttest

go 1.26.8

require (
	github.com/b4e21b16/mqtt v0.0.0
	github.com/b4e21b16/mqtt/websocket v0.0.0
	github.com/gorilla/websocket v1.5.0
	github.com/mochi-mqtt/server/v2 v2.7.9
	go.uber.org/goleak v1.3.0
)

require (
	github.com/coder/websocket v1.8.15 // indirect
	github.com/rs/xid v1.4.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
)

replace github.com/b4e21b16/mqtt => ..

replace github.com/b4e21b16/mqtt/websocket => ../websocket
