package mqtt

import (
	"maps"
	"slices"
	"sync"
)

// NewMemoryStore returns a Store that keeps its state in maps in memory: it
// outlives connections but not the process. It copies the payload,
// correlation data and user properties of every saved message, so callers
// may reuse their buffers, and Load returns fresh copies. It is safe for
// concurrent use.
func NewMemoryStore() Store {
	return &memoryStore{out: make(map[uint64]StoredPublish), in: make(map[uint16]struct{})}
}

// memoryStore is the Store returned by NewMemoryStore.
type memoryStore struct {
	mu     sync.Mutex // guards all fields
	out    map[uint64]StoredPublish
	in     map[uint16]struct{}
	closed bool
}

func (s *memoryStore) Load() (out []StoredPublish, in []uint16, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, errStoreClosed
	}
	for _, seq := range slices.Sorted(maps.Keys(s.out)) {
		r := s.out[seq]
		r.Message = cloneMessage(&r.Message)
		out = append(out, r)
	}
	return out, slices.Sorted(maps.Keys(s.in)), nil
}

func (s *memoryStore) SavePublish(r StoredPublish) error {
	r.Message = cloneMessage(&r.Message)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStoreClosed
	}
	s.out[r.Seq] = r
	return nil
}

func (s *memoryStore) DeletePublish(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStoreClosed
	}
	delete(s.out, seq)
	return nil
}

func (s *memoryStore) SaveInbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStoreClosed
	}
	s.in[id] = struct{}{}
	return nil
}

func (s *memoryStore) DeleteInbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStoreClosed
	}
	delete(s.in, id)
	return nil
}

func (s *memoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.out, s.in = nil, nil
	return nil
}

// cloneMessage returns the stored part of m (see storedMessage) with its
// own copies of the payload, correlation data and user properties. Nil
// slices stay nil and empty ones empty. The two byte slices share one
// allocation, each capped so that appending to one cannot reach the other.
func cloneMessage(m *Message) Message {
	c := storedMessage(m)
	if c.Payload != nil || c.CorrelationData != nil {
		buf := make([]byte, 0, len(c.Payload)+len(c.CorrelationData))
		if c.Payload != nil {
			buf = append(buf, c.Payload...)
			c.Payload = buf[:len(buf):len(buf)]
		}
		if c.CorrelationData != nil {
			n := len(buf)
			buf = append(buf, c.CorrelationData...)
			c.CorrelationData = buf[n:len(buf):len(buf)]
		}
	}
	if c.UserProperties != nil {
		c.UserProperties = slices.Clone(c.UserProperties)
	}
	return c
}
