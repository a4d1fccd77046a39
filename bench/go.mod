module github.com/b4e21b16/mqtt/bench

go 1.26.8

require (
	github.com/b4e21b16/mqtt v0.0.0
	github.com/eclipse/paho.golang v0.23.0
	github.com/eclipse/paho.mqtt.golang v1.5.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	golang.org/x/net v0.44.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
)

replace github.com/b4e21b16/mqtt => ../
