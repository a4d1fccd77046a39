module github.com/b4e21b16/mqtt/examples/browser

go 1.26.8

require (
	github.com/b4e21b16/mqtt v0.0.0
	github.com/b4e21b16/mqtt/websocket v0.0.0
	github.com/chromedp/cdproto v0.160.1
	github.com/chromedp/chromedp v0.23.1
	github.com/coder/websocket v1.8.15
	go.uber.org/goleak v1.3.0
)

require (
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	golang.org/x/sync v0.25.0 // indirect
)

replace (
	github.com/b4e21b16/mqtt => ../..
	github.com/b4e21b16/mqtt/websocket => ../../websocket
)
