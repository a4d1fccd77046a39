//go:build !race

package mqtt_test

// raceEnabled reports whether the race detector is on; it makes goroutine
// stacks larger, so memory bounds that count stacks depend on it.
const raceEnabled = false
