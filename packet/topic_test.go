package packet

import (
	"errors"
	"strings"
	"testing"
)

func TestValidTopicName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		topic string
		want  error
	}{
		{"a", nil},
		{"a/b/c", nil},
		{"/", nil},                  // two empty levels
		{"//", nil},                 // three empty levels
		{"/finance", nil},           // leading empty level (3.1.1 section 4.7.1.3)
		{"sport/tennis/", nil},      // trailing empty level
		{"$SYS/broker/uptime", nil}, // '$' topics are valid names [MQTT-4.7.2-1]
		{"a b/ü/\U0002A6D4", nil},   // spaces and any UTF-8 [MQTT-4.7.3-2]
		{"\uFEFF", nil},             // BOM is a character [MQTT-1.5.4-3]
		{strings.Repeat("x", 65535), nil},
		{"", ErrEmptyTopic}, // [MQTT-4.7.3-1]
		{strings.Repeat("x", 65536), ErrTopicTooLong}, // [MQTT-4.7.3-3]
		{"+", ErrWildcardInTopic},                     // [MQTT-3.3.2-2]
		{"#", ErrWildcardInTopic},
		{"a/+/b", ErrWildcardInTopic},
		{"a/b#", ErrWildcardInTopic},
		{"a+b", ErrWildcardInTopic},
		{"a\x00b", ErrTopicEncoding},       // [MQTT-4.7.3-2]
		{"\xed\xa0\x80", ErrTopicEncoding}, // encoded surrogate [MQTT-1.5.4-1]
		{"a/\xff", ErrTopicEncoding},
		{"é\x00", ErrTopicEncoding},
	} {
		if err := ValidTopicName(c.topic); !errors.Is(err, c.want) {
			t.Errorf("ValidTopicName(%.20q) = %v, want %v", c.topic, err, c.want)
		}
	}
}

func TestValidFilter(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		filter string
		want   error
	}{
		// Examples of MQTT 3.1.1 section 4.7.1 and 5.0 section 4.7.1.
		{"sport/tennis/player1/#", nil},
		{"sport/#", nil},
		{"#", nil},
		{"+", nil},
		{"+/tennis/#", nil},
		{"sport/+/player1", nil},
		{"/+", nil},
		{"+/+", nil},
		{"+/", nil},
		{"/", nil},
		{"$SYS/#", nil},
		{"$SYS/monitor/+", nil},
		{"a/b", nil},
		{strings.Repeat("x", 65535), nil},
		// Shared subscriptions (5.0 section 4.8.2).
		{"$share/group/a/+", nil},
		{"$share/g/#", nil},
		{"$share/g//", nil},
		{"$share/consumer1/sport/tennis/+", nil},
		{"$sharegroup/a", nil}, // not a shared subscription
		{"$share", nil},        // an ordinary filter
		{"", ErrEmptyTopic},
		{strings.Repeat("x", 65536), ErrTopicTooLong},
		{"a\x00", ErrTopicEncoding},
		{"\xed\xa0\x80/#", ErrTopicEncoding},
		{"sport/tennis#", ErrMisplacedHash}, // [MQTT-4.7.1-2] (5.0: [MQTT-4.7.1-1])
		{"sport/tennis/#/ranking", ErrMisplacedHash},
		{"a/#/b", ErrMisplacedHash},
		{"#a", ErrMisplacedHash},
		{"##", ErrMisplacedHash},
		{"#/", ErrMisplacedHash},
		{"sport+", ErrMisplacedPlus}, // [MQTT-4.7.1-3] (5.0 section 4.7.1.2)
		{"a+", ErrMisplacedPlus},
		{"+a", ErrMisplacedPlus},
		{"a/+b/c", ErrMisplacedPlus},
		{"++", ErrMisplacedPlus},
		{"$share/g", ErrBadSharedFilter},
		{"$share/g/", ErrBadSharedFilter},
		{"$share//a", ErrBadSharedFilter},
		{"$share/g+/a", ErrBadSharedFilter},
		{"$share/#/a", ErrBadSharedFilter},
		{"$share/", ErrBadSharedFilter},
		{"$share/g/a/#/b", ErrMisplacedHash},
		{"$share/g/a+", ErrMisplacedPlus},
	} {
		if err := ValidFilter(c.filter); !errors.Is(err, c.want) {
			t.Errorf("ValidFilter(%.24q) = %v, want %v", c.filter, err, c.want)
		}
	}
}

func TestSharedFilter(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, group, filter string }{
		{"$share/g/a/+", "g", "a/+"},
		{"$share/g/#", "g", "#"},
		{"a/b", "", "a/b"},
		{"$share/g", "", "$share/g"},
		{"$sharex/g/a", "", "$sharex/g/a"},
	} {
		g, f := SharedFilter(c.in)
		if g != c.group || f != c.filter {
			t.Errorf("SharedFilter(%q) = %q, %q; want %q, %q", c.in, g, f, c.group, c.filter)
		}
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a", false},
		{"a", "a/b", false},
		{"a/b", "a/b/", false},
		{"a/b/", "a/b/", true},
		// '#' (MQTT 3.1.1 section 4.7.1.2, 5.0 section 4.7.1.2).
		{"#", "a", true},
		{"#", "a/b/c", true},
		{"#", "/", true},
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true}, // the parent level
		{"a/#", "a", true},
		{"a/#", "a/", true},
		{"a/#", "ab", false},
		{"a/#", "b/a", false},
		{"a/b/#", "a", false},
		{"+/#", "a", true},
		// '+' (section 4.7.1.3).
		{"+", "a", true},
		{"+", "a/b", false},
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player2", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"+/b/+", "a/b/c", true},
		{"+/b/+", "a/x/c", false},
		{"a/+/#", "a/b", true},
		{"a/+/#", "a", false},
		// '$' topics are not matched by a leading wildcard [MQTT-4.7.2-1].
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/#", "$SYS/x", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"$SYS/#", "$SYS", true},
		{"a/$x", "a/$x", true},
		{"a/+", "a/$x", true}, // only the first level is special
		// Shared subscriptions match on the filter after the group.
		{"$share/g/a/+", "a/b", true},
		{"$share/g/a/+", "a/b/c", false},
		{"$share/g/#", "x/y", true},
		{"$share/g/#", "$SYS/x", false},
		{"$share/g/$SYS/#", "$SYS/x", true},
	} {
		if got := Match(c.filter, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}
