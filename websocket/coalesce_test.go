//go:build !js

package websocket

import (
	"bytes"
	"errors"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recordingConn records the size of each write.
type recordingConn struct {
	net.Conn
	writes []int
	data   bytes.Buffer
	err    error
}

func (r *recordingConn) Write(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	r.writes = append(r.writes, len(p))
	return r.data.Write(p)
}

// TestCoalescingConn checks that writes made while the connection is
// corked go out together when it is uncorked, in pieces of at most
// coalesceSize and in order, that other writes go straight through, and
// that a failed write is reported.
func TestCoalescingConn(t *testing.T) {
	t.Parallel()
	piece := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	for _, tc := range []struct {
		name   string
		pieces []int // written while corked, of 4 KiB buffers as coder/websocket writes
		want   []int
	}{
		{"small message", []int{100}, []int{100}},
		{"three buffers", []int{4096, 4096, 10}, []int{8202}},
		{"longer than a buffer", []int{30000, 4096, 4096}, []int{coalesceSize, 38192 - coalesceSize}},
		{"nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &recordingConn{}
			c := &coalescingConn{Conn: rec}
			var want bytes.Buffer
			c.cork()
			for i, n := range tc.pieces {
				p := piece(n, byte('a'+i))
				want.Write(p)
				if m, err := c.Write(p); m != n || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", n, m, err)
				}
			}
			if err := c.uncork(); err != nil {
				t.Fatalf("uncork: %v", err)
			}
			if diff := cmp.Diff(tc.want, rec.writes); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if !bytes.Equal(want.Bytes(), rec.data.Bytes()) {
				t.Error("the bytes written differ from those given")
			}
			if c.buf != nil {
				t.Error("the buffer is kept after uncorking")
			}
		})
	}
	t.Run("not corked", func(t *testing.T) {
		t.Parallel()
		rec := &recordingConn{}
		c := &coalescingConn{Conn: rec}
		c.Write(piece(10, 'x'))
		c.Write(piece(20, 'y'))
		if diff := cmp.Diff([]int{10, 20}, rec.writes); diff != "" {
			t.Errorf("writes (-want +got):\n%s", diff)
		}
	})
	t.Run("nested", func(t *testing.T) {
		t.Parallel()
		rec := &recordingConn{}
		c := &coalescingConn{Conn: rec}
		c.cork()
		c.Write(piece(10, 'x'))
		c.cork()
		c.Write(piece(20, 'y'))
		c.uncork()
		if len(rec.writes) != 0 {
			t.Errorf("wrote %v before the last uncork", rec.writes)
		}
		c.uncork()
		if diff := cmp.Diff([]int{30}, rec.writes); diff != "" {
			t.Errorf("writes (-want +got):\n%s", diff)
		}
	})
	t.Run("write fails", func(t *testing.T) {
		t.Parallel()
		errBroken := errors.New("broken")
		c := &coalescingConn{Conn: &recordingConn{err: errBroken}}
		c.cork()
		c.Write(piece(10, 'x'))
		if err := c.uncork(); !errors.Is(err, errBroken) {
			t.Errorf("uncork = %v, want the write's error", err)
		}
		c.cork()
		if _, err := c.Write(piece(coalesceSize+1, 'y')); !errors.Is(err, errBroken) {
			t.Errorf("Write beyond a buffer = %v, want the write's error", err)
		}
		c.uncork()
	})
}
