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

// trySend sends a Ping that waited for a connection; see queued.
func (r *pingReq) trySend(s *session, pubBlocked bool) (left, blocked bool) {
	s.ping(r.reply)
	return true, pubBlocked
}

func (s *session) ping(reply chan time.Duration) {
	now := time.Now()
	if len(s.pings) == 0 {
		s.pingSeen = s.conn.r.packetsIn.Load()
		s.pingDeadline = now.Add(s.cfg.PingTimeout)
	}
	s.pings = append(s.pings, pingWait{sent: now, reply: reply})
	s.lastPing = now
	s.send(&packet.Pingreq{})
	s.armKeepAlive(now)
}

func (s *session) pong() {
	if len(s.pings) == 0 {
		return // an unsolicited PINGRESP is harmless
	}
	p := s.pings[0]
	s.pings = s.pings[1:]
	rtt := time.Since(p.sent)
	s.c.counters.lastRTT.Store(int64(rtt))
	if p.reply != nil {
		p.reply <- rtt
	}
	if len(s.pings) > 0 {
		s.pingSeen = s.conn.r.packetsIn.Load()
		s.pingDeadline = time.Now().Add(s.cfg.PingTimeout)
	}
	s.armKeepAlive(time.Now())
}

// keepAlive runs when the keepalive timer fires. It sends PINGREQ when the
// client has sent nothing for the keepalive interval [MQTT-3.1.2-23],
// whatever else is going on: PINGREQs already unanswered, or reading held
// back for a slow application (the PINGRESP may then sit unread). It
// declares the connection lost when nothing at all was read for
// PingTimeout after a PINGREQ; time while the session itself holds reading
// back does not count against the broker.
func (s *session) keepAlive() {
	conn := s.conn
	if conn == nil || conn.keepAlive == 0 {
		return
	}
	now := time.Now()
	if len(s.pings) > 0 {
		if n := conn.r.packetsIn.Load(); n != s.pingSeen || s.stalled {
			s.pingSeen = n
			s.pingDeadline = now.Add(s.cfg.PingTimeout)
		} else if !now.Before(s.pingDeadline) {
			s.log.Info("mqtt: keepalive timeout", "server", conn.server.url, "ping_timeout", s.cfg.PingTimeout)
			conn.cancel(ErrKeepAliveTimeout)
			return
		}
	}
	if s.silent(now) >= conn.keepAlive {
		s.ping(nil)
		s.trimBuffers()
		return
	}
	s.armKeepAlive(now)
}

// trimBuffers lets go of the large buffers a burst left behind, once the
// connection has been quiet for a keepalive interval.
func (s *session) trimBuffers() {
	s.conn.w.trim()
	s.conn.r.trim()
	s.defaultQ.trim()
	for _, sub := range s.subs {
		sub.q.trim()
	}
	if s.ackOrder.len() == 0 {
		s.ackOrder.reset()
	}
	s.freeRefs = nil
}

// silent returns how long the client has sent nothing: since the writer
// last wrote, or since the latest PINGREQ was queued if that is later (a
// writer stuck on a broker that does not read must not make the session
// queue a PINGREQ on every tick).
func (s *session) silent(now time.Time) time.Duration {
	last := time.Unix(0, s.conn.w.lastWrite.Load())
	if s.lastPing.After(last) {
		last = s.lastPing
	}
	return now.Sub(last)
}

// armKeepAlive sets the keepalive timer to the earlier of when the
// keepalive interval of silence will have passed and, while a PINGREQ is
// unanswered, the ping deadline.
func (s *session) armKeepAlive(now time.Time) {
	if s.conn == nil || s.conn.keepAlive == 0 {
		return
	}
	next := s.conn.keepAlive - s.silent(now)
	if len(s.pings) > 0 {
		next = min(next, s.pingDeadline.Sub(now))
	}
	s.kaTimer.Reset(max(next, time.Millisecond))
}
