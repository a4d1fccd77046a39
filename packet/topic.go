package packet

import (
	"errors"
	"strings"
)

// Topic errors, returned (wrapped) by ValidTopicName and ValidFilter.
var (
	ErrEmptyTopic      = errors.New("topic is empty")
	ErrTopicTooLong    = errors.New("topic is longer than 65535 bytes")
	ErrTopicEncoding   = errors.New("topic is not valid UTF-8 or contains U+0000")
	ErrWildcardInTopic = errors.New("topic name contains a wildcard (+ or #)")
	ErrMisplacedHash   = errors.New("multi-level wildcard # must be the last level, alone")
	ErrMisplacedPlus   = errors.New("single-level wildcard + must occupy a whole level")
	ErrBadSharedFilter = errors.New("shared subscription needs $share/{group}/{filter} with a non-empty group without wildcards")
)

// ValidTopicName checks a topic name for PUBLISH: non-empty [MQTT-4.7.3-1],
// no wildcards [MQTT-3.3.2-2], valid UTF-8 without U+0000 [MQTT-4.7.3-2].
func ValidTopicName(t string) error {
	switch {
	case t == "":
		return ErrEmptyTopic
	case len(t) > 65535:
		return ErrTopicTooLong
	case strings.ContainsAny(t, "+#"):
		return ErrWildcardInTopic
	case !ValidString(t):
		return ErrTopicEncoding
	}
	return nil
}

// ValidFilter checks a topic filter for SUBSCRIBE and UNSUBSCRIBE: non-empty,
// valid UTF-8, '#' only as the whole last level [MQTT-4.7.1-1], '+' only as a
// whole level [MQTT-4.7.1-2], and a well-formed $share/{group}/{filter}.
func ValidFilter(f string) error {
	switch {
	case f == "":
		return ErrEmptyTopic
	case len(f) > 65535:
		return ErrTopicTooLong
	case !ValidString(f):
		return ErrTopicEncoding
	}
	if rest, ok := strings.CutPrefix(f, "$share/"); ok {
		group, filter, ok := strings.Cut(rest, "/")
		if !ok || group == "" || filter == "" || strings.ContainsAny(group, "+#") {
			return ErrBadSharedFilter
		}
		f = filter
	}
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '#':
			if i != len(f)-1 || (i > 0 && f[i-1] != '/') {
				return ErrMisplacedHash
			}
		case '+':
			if (i > 0 && f[i-1] != '/') || (i < len(f)-1 && f[i+1] != '/') {
				return ErrMisplacedPlus
			}
		}
	}
	return nil
}

// SharedFilter splits "$share/group/filter" into its group and filter. For
// other filters it returns "" and the filter unchanged.
func SharedFilter(f string) (group, filter string) {
	if rest, ok := strings.CutPrefix(f, "$share/"); ok {
		if g, flt, ok := strings.Cut(rest, "/"); ok {
			return g, flt
		}
	}
	return "", f
}

// Match reports whether topic name t matches filter f. A filter starting with
// a wildcard does not match a topic starting with '$' [MQTT-4.7.2-1]. The
// filter of a shared subscription is matched without its $share/group/ prefix.
func Match(f, t string) bool {
	_, f = SharedFilter(f)
	if len(t) > 0 && t[0] == '$' && len(f) > 0 && (f[0] == '+' || f[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(f, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(t, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			// "a/#" matches "a" as well [MQTT-4.7.1-2 remark]: the parent level.
			return fmore == tmore || (fmore && frest == "#")
		}
		f, t = frest, trest
	}
}
