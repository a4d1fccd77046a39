module github.com/b4e21b16/mqtt/scram

go 1.26.8

require (
	github.com/b4e21b16/mqtt v0.0.0
	github.com/xdg-go/scram v1.4.0
	github.com/xdg-go/stringprep v1.0.4
	go.uber.org/goleak v1.3.0
)

require (
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/text v0.3.8 // indirect
)

replace github.com/b4e21b16/mqtt => ..
