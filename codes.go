package mqtt

import "github.com/b4e21b16/mqtt/packet"

// ReasonCode is an MQTT 5.0 reason code, or a 3.1.1 return code: what the
// broker answered in a CONNACK, PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK,
// DISCONNECT or AUTH. Errors carry it (ConnectError, ReasonError,
// SubscribeError); compare it with the constants below. Codes of 0x80 and
// above are failures (IsError).
type ReasonCode = packet.ReasonCode

// Reason codes of MQTT 5.0, section 2.4. GrantedQoS0 and
// NormalDisconnection are Success by other names.
const (
	Success                             = packet.Success
	NormalDisconnection                 = packet.NormalDisconnection
	GrantedQoS0                         = packet.GrantedQoS0
	GrantedQoS1                         = packet.GrantedQoS1
	GrantedQoS2                         = packet.GrantedQoS2
	DisconnectWithWill                  = packet.DisconnectWithWill
	NoMatchingSubscribers               = packet.NoMatchingSubscribers
	NoSubscriptionExisted               = packet.NoSubscriptionExisted
	ContinueAuthentication              = packet.ContinueAuthentication
	ReAuthenticate                      = packet.ReAuthenticate
	UnspecifiedError                    = packet.UnspecifiedError
	MalformedPacket                     = packet.MalformedPacket
	ProtocolError                       = packet.ProtocolError
	ImplementationSpecificError         = packet.ImplementationSpecificError
	UnsupportedProtocolVersion          = packet.UnsupportedProtocolVersion
	ClientIdentifierNotValid            = packet.ClientIdentifierNotValid
	BadUserNameOrPassword               = packet.BadUserNameOrPassword
	NotAuthorized                       = packet.NotAuthorized
	ServerUnavailable                   = packet.ServerUnavailable
	ServerBusy                          = packet.ServerBusy
	Banned                              = packet.Banned
	ServerShuttingDown                  = packet.ServerShuttingDown
	BadAuthenticationMethod             = packet.BadAuthenticationMethod
	KeepAliveTimeout                    = packet.KeepAliveTimeout
	SessionTakenOver                    = packet.SessionTakenOver
	TopicFilterInvalid                  = packet.TopicFilterInvalid
	TopicNameInvalid                    = packet.TopicNameInvalid
	PacketIdentifierInUse               = packet.PacketIdentifierInUse
	PacketIdentifierNotFound            = packet.PacketIdentifierNotFound
	ReceiveMaximumExceeded              = packet.ReceiveMaximumExceeded
	TopicAliasInvalid                   = packet.TopicAliasInvalid
	PacketTooLarge                      = packet.PacketTooLarge
	MessageRateTooHigh                  = packet.MessageRateTooHigh
	QuotaExceeded                       = packet.QuotaExceeded
	AdministrativeAction                = packet.AdministrativeAction
	PayloadFormatInvalid                = packet.PayloadFormatInvalid
	RetainNotSupported                  = packet.RetainNotSupported
	QoSNotSupported                     = packet.QoSNotSupported
	UseAnotherServer                    = packet.UseAnotherServer
	ServerMoved                         = packet.ServerMoved
	SharedSubscriptionsNotSupported     = packet.SharedSubscriptionsNotSupported
	ConnectionRateExceeded              = packet.ConnectionRateExceeded
	MaximumConnectTime                  = packet.MaximumConnectTime
	SubscriptionIdentifiersNotSupported = packet.SubscriptionIdentifiersNotSupported
	WildcardSubscriptionsNotSupported   = packet.WildcardSubscriptionsNotSupported
)

// MQTT 3.1.1 CONNACK return codes (section 3.2.2.3), which a 3.1.1 broker
// refuses a connection with.
const (
	RefusedProtocolVersion    = packet.RefusedProtocolVersion
	RefusedIdentifierRejected = packet.RefusedIdentifierRejected
	RefusedServerUnavailable  = packet.RefusedServerUnavailable
	RefusedBadUserNameOrPass  = packet.RefusedBadUserNameOrPass
	RefusedNotAuthorized      = packet.RefusedNotAuthorized
)

// RetainHandling says whether the broker sends retained messages when a
// subscription is made (an MQTT 5.0 subscription option; 3.1.1 brokers
// always send them).
type RetainHandling byte

// Retain handling options.
const (
	// SendRetained sends the retained messages on every subscribe (the
	// default, and what 3.1.1 does).
	SendRetained RetainHandling = 0
	// SendRetainedIfNew sends them only if the subscription did not exist.
	SendRetainedIfNew RetainHandling = 1
	// DontSendRetained never sends them.
	DontSendRetained RetainHandling = 2
)
