// Package interop is the broker interoperability suite of
// github.com/b4e21b16/mqtt: one set of scenarios run against mosquitto,
// the NATS server's MQTT listener, RabbitMQ's MQTT plugin and the embedded
// mochi-mqtt broker. The package has no API; everything is in its tests.
//
// It is a module of its own so that importing the client library never
// pulls in a broker.
package interop
