package main

import (
	"flag"
	"strings"
	"time"

	"github.com/b4e21b16/mqtt"
)

// propFlags are the MQTT 5.0 message properties pub can set. A 3.1.1
// connection ignores them.
type propFlags struct {
	contentType, responseTopic, correlation string
	userProps                               stringList
	expiry                                  int
	utf8                                    bool
}

func (p *propFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.contentType, "content-type", "", "MQTT 5.0 content `type` of the message")
	fs.StringVar(&p.responseTopic, "response-topic", "", "MQTT 5.0 response `topic`")
	fs.StringVar(&p.correlation, "correlation-data", "", "MQTT 5.0 correlation `data`")
	fs.Var(&p.userProps, "user-property", "MQTT 5.0 user property `name=value` (repeatable)")
	fs.IntVar(&p.expiry, "message-expiry", 0, "MQTT 5.0 message expiry interval in `seconds` (0: never)")
	fs.BoolVar(&p.utf8, "payload-utf8", false, "MQTT 5.0: mark the payload as UTF-8 text")
}

// apply checks the properties and sets them on m.
func (p *propFlags) apply(m *mqtt.Message) error {
	m.ContentType = p.contentType
	if p.responseTopic != "" {
		if err := checkTopicName("--response-topic", p.responseTopic); err != nil {
			return err
		}
		m.ResponseTopic = p.responseTopic
	}
	if p.correlation != "" {
		m.CorrelationData = []byte(p.correlation)
	}
	for _, kv := range p.userProps {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			return usagef("--user-property %q: want name=value", kv)
		}
		m.UserProperties = append(m.UserProperties, mqtt.UserProperty{Key: name, Value: value})
	}
	if p.expiry < 0 || p.expiry > 1<<32-1 {
		return usagef("--message-expiry %d: want 0 to 4294967295 seconds", p.expiry)
	}
	m.Expiry = time.Duration(p.expiry) * time.Second
	m.PayloadUTF8 = p.utf8
	return nil
}
