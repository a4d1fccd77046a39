package mqtt

import "github.com/b4e21b16/mqtt/packet"

// topicAliases assigns MQTT 5.0 topic aliases to outbound publishes on one
// connection, within the broker's Topic Alias Maximum. A topic is sent in
// full with its alias the first time, and as the 2-byte alias alone after
// that [MQTT-3.3.2-12].
//
// When every alias is taken, a topic without one replaces the least used of
// a few aliased topics only once it has been published more often than that
// topic was (counts are halved now and then, so that old popularity fades).
// A steady set of hot topics therefore keeps its aliases, while a stream of
// one-off topics costs lookups but never evicts them.
//
// It is used by the writer under the writer's lock, so publishes from any
// goroutine see one consistent table.
type topicAliases struct {
	max     int
	byTopic map[string]uint16
	slots   []aliasSlot       // alias i+1
	misses  map[string]uint32 // uses of topics without an alias
	hand    int               // next slot the eviction sample starts at
	// maxPacket is the broker's Maximum Packet Size: a publish that fits
	// only without the 3-byte Topic Alias property is sent without one.
	maxPacket int
	uses      int // publishes since counts were last halved
}

type aliasSlot struct {
	topic string
	hits  uint32
}

const (
	// aliasSample is how many aliased topics an unaliased one is compared
	// with before it may take the least used one's alias.
	aliasSample = 8
	// aliasAging is how many publishes per alias pass between halvings.
	aliasAging = 16
)

func newTopicAliases(max, maxPacket int) *topicAliases {
	return &topicAliases{max: max, maxPacket: maxPacket} // the maps are made on first use
}

// assign returns the alias to send topic with, and whether the broker
// already knows it (the topic can then be left out). Alias 0 means: send
// the topic without an alias.
func (t *topicAliases) assign(topic string) (alias uint16, known bool) {
	if t.byTopic == nil {
		t.byTopic = make(map[string]uint16, min(t.max, 64))
		t.misses = make(map[string]uint32)
	}
	t.uses++
	if t.uses >= aliasAging*t.max {
		t.age()
	}
	if a, ok := t.byTopic[topic]; ok {
		t.slots[a-1].hits++
		return a, true
	}
	if len(t.slots) < t.max {
		t.slots = append(t.slots, aliasSlot{topic: topic, hits: 1})
		a := uint16(len(t.slots))
		t.byTopic[topic] = a
		return a, false
	}
	n := t.misses[topic] + 1
	victim := t.leastUsed()
	if n <= t.slots[victim].hits {
		if len(t.misses) >= 4*t.max {
			clear(t.misses) // bounded memory under a stream of one-off topics
		}
		t.misses[topic] = n
		return 0, false
	}
	delete(t.misses, topic)
	delete(t.byTopic, t.slots[victim].topic)
	t.slots[victim] = aliasSlot{topic: topic, hits: n}
	a := uint16(victim + 1)
	t.byTopic[topic] = a
	return a, false
}

// leastUsed returns the index of the least used slot among a sample of
// aliasSample slots taken round-robin.
func (t *topicAliases) leastUsed() int {
	best := -1
	for range min(aliasSample, len(t.slots)) {
		i := t.hand
		t.hand = (t.hand + 1) % len(t.slots)
		if best < 0 || t.slots[i].hits < t.slots[best].hits {
			best = i
		}
	}
	return best
}

// age halves every count.
func (t *topicAliases) age() {
	t.uses = 0
	for i := range t.slots {
		t.slots[i].hits /= 2
	}
	for k, v := range t.misses {
		if v /= 2; v == 0 {
			delete(t.misses, k)
		} else {
			t.misses[k] = v
		}
	}
}

// appendPublish encodes p with a topic alias when the table gives one,
// leaving p itself unchanged (a re-send on a later connection must carry
// the full topic).
func (t *topicAliases) appendPublish(dst []byte, p *packet.Publish, v packet.Version) ([]byte, error) {
	if t.maxPacket < packet.MaxPacketSize && p.Size(v)+3 > t.maxPacket {
		return p.Append(dst, v)
	}
	alias, known := t.assign(p.Topic)
	if alias == 0 {
		return p.Append(dst, v)
	}
	q := *p
	q.Props.TopicAlias = alias
	q.Props.Set(packet.PropTopicAlias)
	if known {
		q.Topic = ""
	}
	return q.Append(dst, v)
}
