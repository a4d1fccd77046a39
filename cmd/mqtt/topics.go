package main

import (
	"errors"
	"fmt"

	"github.com/b4e21b16/mqtt/packet"
)

// checkTopicName checks a topic to publish to, given with flag, so that a
// mistake is reported before connecting.
func checkTopicName(flag, topic string) error {
	err := packet.ValidTopicName(topic)
	if err == nil {
		return nil
	}
	hint := ""
	if errors.Is(err, packet.ErrWildcardInTopic) {
		hint = "; wildcards are for subscribing (mqtt sub), a message goes to one exact topic"
	}
	return usagef("invalid topic %q (%s): %v%s", topic, flag, err, hint)
}

// checkTopicFilter checks a topic filter to subscribe to.
func checkTopicFilter(flag, filter string) error {
	err := packet.ValidFilter(filter)
	if err == nil {
		return nil
	}
	hint := ""
	switch {
	case errors.Is(err, packet.ErrMisplacedHash):
		hint = `; for example "a/#", not "a#" or "a/#/b"`
	case errors.Is(err, packet.ErrMisplacedPlus):
		hint = `; for example "a/+/c", not "a+/c"`
	}
	return usagef("invalid topic filter %q (%s): %v%s", filter, flag, err, hint)
}

// stringList is a repeatable string flag, such as sub's -t.
type stringList []string

func (l *stringList) String() string { return fmt.Sprint([]string(*l)) }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}
