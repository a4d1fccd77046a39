package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"unicode/utf8"

	"github.com/b4e21b16/mqtt"
)

// printer writes received messages for sub: the payload, "topic payload"
// with -v, or one JSON object per line with --json.
type printer struct {
	w                        *bufio.Writer
	verbose, json, noNewline bool
}

// print writes m and flushes, so that output shows as messages arrive.
func (p *printer) print(m *mqtt.Message) error {
	switch {
	case p.json:
		b, err := json.Marshal(toJSON(m))
		if err != nil {
			return err
		}
		p.w.Write(b)
		p.w.WriteByte('\n')
	default:
		if p.verbose {
			p.w.WriteString(m.Topic)
			p.w.WriteByte(' ')
		}
		p.w.Write(m.Payload)
		if !p.noNewline {
			p.w.WriteByte('\n')
		}
	}
	return p.w.Flush()
}

// jsonMessage is the --json form of a message. A payload that is valid UTF-8
// is a JSON string; any other payload is base64 with Encoding "base64".
type jsonMessage struct {
	Topic      string          `json:"topic"`
	Payload    string          `json:"payload"`
	Encoding   string          `json:"encoding,omitempty"`
	QoS        int             `json:"qos"`
	Retain     bool            `json:"retain"`
	Duplicate  bool            `json:"dup,omitempty"`
	Properties *jsonProperties `json:"properties,omitempty"`
}

// jsonProperties are the MQTT 5.0 properties of a message, when it has any.
// Subscription identifiers are left out: the client assigns them itself to
// route messages, so they say nothing about the message.
// Correlation data follows the payload's rule: a string when valid UTF-8,
// otherwise base64 with CorrelationEncoding "base64".
type jsonProperties struct {
	ContentType         string         `json:"content_type,omitempty"`
	ResponseTopic       string         `json:"response_topic,omitempty"`
	CorrelationData     string         `json:"correlation_data,omitempty"`
	CorrelationEncoding string         `json:"correlation_encoding,omitempty"`
	PayloadUTF8         bool           `json:"payload_format_utf8,omitempty"`
	MessageExpiry       int64          `json:"message_expiry,omitempty"` // seconds
	UserProperties      []jsonUserProp `json:"user_properties,omitempty"`
}

// jsonUserProp is one user property; a list keeps their order and repeats.
type jsonUserProp struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// toJSON converts m to its --json form.
func toJSON(m *mqtt.Message) jsonMessage {
	j := jsonMessage{Topic: m.Topic, QoS: int(m.QoS), Retain: m.Retain, Duplicate: m.Duplicate}
	j.Payload, j.Encoding = textOrBase64(m.Payload)
	p := jsonProperties{
		ContentType:   m.ContentType,
		ResponseTopic: m.ResponseTopic,
		PayloadUTF8:   m.PayloadUTF8,
		MessageExpiry: int64(m.Expiry.Seconds()),
	}
	if m.CorrelationData != nil {
		p.CorrelationData, p.CorrelationEncoding = textOrBase64(m.CorrelationData)
	}
	for _, up := range m.UserProperties {
		p.UserProperties = append(p.UserProperties, jsonUserProp{Name: up.Key, Value: up.Value})
	}
	if p.ContentType != "" || p.ResponseTopic != "" || m.CorrelationData != nil || p.PayloadUTF8 ||
		p.MessageExpiry != 0 || len(p.UserProperties) > 0 {
		j.Properties = &p
	}
	return j
}

// textOrBase64 returns b as a string when it is valid UTF-8, and otherwise
// its base64 encoding with the encoding's name.
func textOrBase64(b []byte) (s, encoding string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}
