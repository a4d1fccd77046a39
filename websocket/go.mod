module github.com/b4e21b16/mqtt/websocket

go 1.26.8

require (
	github.com/b4e21b16/mqtt v0.0.0
	github.com/coder/websocket v1.8.15
	github.com/google/go-cmp v0.7.0
	go.uber.org/goleak v1.3.0
)

require golang.org/x/sync v0.25.0 // indirect

replace github.com/b4e21b16/mqtt => ..
