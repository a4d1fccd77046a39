module github.com/b4e21b16/mqtt/bench

go 1.26.8

require (
	github.com/b4e21b16/mqtt v0.0.0
	github.com/eclipse/paho.golang v0.23.0
	github.com/eclipse/paho.mqtt.golang v1.5.1
)

replace github.com/b4e21b16/mqtt => ../
