package websocket

import "fmt"

// StatusError reports that the server answered the upgrade request with
// an HTTP status other than 101 Switching Protocols, such as 401
// Unauthorized or 404 Not Found.
type StatusError struct {
	StatusCode int    // such as 401
	Status     string // such as "401 Unauthorized"
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("mqtt: WebSocket handshake: the server answered %q instead of 101 Switching Protocols", e.Status)
}
