package packet

import "testing"

// TestZeroAllocs checks the hot paths of a connection: encoding PUBLISH into
// a reused buffer and decoding PUBLISH and acknowledgements without
// properties allocate nothing.
func TestZeroAllocs(t *testing.T) {
	for _, v := range []Version{V311, V5} {
		for _, qos := range []byte{0, 1, 2} {
			p := benchPublish(qos)
			buf := make([]byte, 0, 256)
			if n := testing.AllocsPerRun(100, func() {
				var err error
				if buf, err = p.Append(buf[:0], v); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("Publish.Append QoS %d %v: %v allocs/op, want 0", qos, v, n)
			}

			h, body := splitPacket(t, encode(t, p, v))
			var got Publish
			if n := testing.AllocsPerRun(100, func() {
				if err := DecodePublish(h, body, v, &got); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("DecodePublish QoS %d %v: %v allocs/op, want 0", qos, v, n)
			}
		}
		for _, a := range []*Ack{
			{PacketType: PUBACK, PacketID: 1},
			{PacketType: PUBREL, PacketID: 2},
			{PacketType: PUBCOMP, PacketID: 3, ReasonCode: PacketIdentifierNotFound},
		} {
			buf := make([]byte, 0, 16)
			if n := testing.AllocsPerRun(100, func() { buf, _ = a.Append(buf[:0], v) }); n != 0 {
				t.Errorf("Ack.Append %v %v: %v allocs/op, want 0", a.PacketType, v, n)
			}
			h, body := splitPacket(t, encode(t, a, v))
			var got Ack
			if n := testing.AllocsPerRun(100, func() {
				if err := DecodeAck(h, body, v, &got); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("DecodeAck %v %v: %v allocs/op, want 0", a.PacketType, v, n)
			}
		}
	}
}
