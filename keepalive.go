package mqtt

import (
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

type pingReq struct{ reply chan time.Duration }

func (r *pingReq) fail(error) {}

func (r *pingReq) handle(s *session) {
	if s.refusing() != nil {
		return // Ping sees Done closed or waits on its ctx
	}
	if s.conn == nil {
		s.waiting = append(s.waiting, r) // sent once reconnected
		return
	}
	s.ping(r.reply)
}

func (s *session) ping(reply chan time.Duration) {
	now := time.Now()
	if len(s.pings) == 0 {
		s.pingSeen = s.conn.r.packetsIn.Load()
		s.pingDeadline = now.Add(s.cfg.PingTimeout)
	}
	s.pings = append(s.pings, pingWait{sent: now, reply: reply})
	s.send(&packet.Pingreq{})
	if len(s.pings) == 1 {
		s.armKeepAlive(now)
	}
}

func (s *session) pong() {
	if len(s.pings) == 0 {
		return // an unsolicited PINGRESP is harmless
	}
	p := s.pings[0]
	s.pings = s.pings[1:]
	s.lastRTT = time.Since(p.sent)
	s.c.counters.lastRTT.Store(int64(s.lastRTT))
	if p.reply != nil {
		p.reply <- s.lastRTT
	}
	if len(s.pings) > 0 {
		s.pingSeen = s.conn.r.packetsIn.Load()
		s.pingDeadline = time.Now().Add(s.cfg.PingTimeout)
	}
	s.armKeepAlive(time.Now())
}

// keepAlive runs when the keepalive timer fires: it sends PINGREQ when the
// client has been silent for the keepalive interval [MQTT-3.1.2-23], and
// declares the connection lost when nothing at all arrived for PingTimeout
// after a PINGREQ. Time while the session itself holds reading back (a slow
// application under OverflowPolicy Block) does not count against the broker.
func (s *session) keepAlive() {
	conn := s.conn
	if conn == nil || conn.keepAlive == 0 {
		return
	}
	now := time.Now()
	if len(s.pings) > 0 {
		if n := conn.r.packetsIn.Load(); n != s.pingSeen || s.pausedBy != 0 {
			s.pingSeen = n
			s.pingDeadline = now.Add(s.cfg.PingTimeout)
		} else if !now.Before(s.pingDeadline) {
			s.log.Info("mqtt: keepalive timeout", "server", conn.server.url, "ping_timeout", s.cfg.PingTimeout)
			conn.cancel(ErrKeepAliveTimeout)
			return
		}
	}
	// While the session holds reading back (a slow application), the
	// answer to an earlier PINGREQ may sit unread in the stream; the
	// broker still needs to hear from the client every keepalive interval
	// [MQTT-3.1.2-23], so another PINGREQ goes out.
	if (len(s.pings) == 0 || s.pausedBy != 0) && s.idle(now) >= conn.keepAlive {
		s.ping(nil)
		s.trimBuffers()
	}
	s.armKeepAlive(now)
}

// trimBuffers lets go of the large buffers a burst left behind, once the
// connection has been quiet for a keepalive interval.
func (s *session) trimBuffers() {
	s.conn.w.trim()
	s.defaultQ.trim()
	for _, sub := range s.subs {
		sub.q.trim()
	}
	if s.ackOrder.len() == 0 {
		s.ackOrder.reset()
	}
	s.freeRefs = nil
}

// idle returns how long the client has sent nothing.
func (s *session) idle(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, s.conn.w.lastWrite.Load()))
}

// armKeepAlive sets the keepalive timer: to the ping deadline while a
// PINGREQ is unanswered, otherwise to when the keepalive interval of
// silence will have passed.
func (s *session) armKeepAlive(now time.Time) {
	if s.conn == nil || s.conn.keepAlive == 0 {
		return
	}
	next := s.conn.keepAlive - s.idle(now)
	if len(s.pings) > 0 {
		next = s.pingDeadline.Sub(now)
	}
	s.kaTimer.Reset(max(next, time.Millisecond))
}
