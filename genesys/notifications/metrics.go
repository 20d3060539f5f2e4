package notifications

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Kinds of messages read from a socket.
const (
	kindEvent     = "event"
	kindHeartbeat = "heartbeat" // heartbeats and pongs: topic channel.metadata
	kindSystem    = "system"    // v2.system.* notices
	kindMalformed = "malformed" // not a notification
)

// Outcomes of an event.
const (
	outcomeDelivered = "delivered"
	outcomeIgnored   = "ignored"   // the dispatcher answered ErrNoMatch or ErrDuplicate
	outcomeDuplicate = "duplicate" // seen already on another channel
	outcomeFailed    = "failed"    // the dispatcher failed permanently
	outcomeLost      = "lost"      // still undelivered when the drain timeout ran out
)

// Reasons to replace a channel.
const (
	reasonSocketError     = "socket_error"
	reasonHeartbeatMissed = "heartbeat_missed"
	reasonSocketClosing   = "socket_closing"
	reasonExpiry          = "expiry"
	reasonUnsubscribed    = "no_longer_subscribed"
)

// Origins of a channel a lane connects.
const (
	originCreated = "created" // created for it
	originReused  = "reused"  // one no lane was using, connected again because the account was full
	originUnknown = "unknown" // a creation whose answer was lost, counted as a channel until it would expire
)

type metrics struct {
	messages, events, reconnects, missed, retries metric.Int64Counter
	channels, limitWaits                          metric.Int64Counter
	attrs                                         map[string]metric.AddOption
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter("github.com/fanbridge/fanbridge/genesys/notifications")
	var (
		ms  metrics
		err error
	)
	counter := func(name, unit, desc string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		return c
	}
	ms.messages = counter("fanbridge.notifications.messages", "{message}", "WebSocket messages read, by kind (event, heartbeat, system, malformed)")
	ms.events = counter("fanbridge.notifications.events", "{event}", "Events handled, by outcome (delivered, ignored, duplicate, failed, lost)")
	ms.reconnects = counter("fanbridge.notifications.reconnects", "{channel}", "Channels replaced, by reason")
	ms.missed = counter("fanbridge.notifications.heartbeats_missed", "{socket}", "Sockets that stayed silent longer than the heartbeat timeout")
	ms.retries = counter("fanbridge.notifications.dispatch_retries", "{attempt}", "Dispatch attempts made again after a failed one")
	ms.channels = counter("fanbridge.notifications.channels", "{channel}",
		"Channels taken to connect, by origin (created, or reused because Genesys' limit of 20 was reached), and creations whose answer was lost (origin unknown)")
	ms.limitWaits = counter("fanbridge.notifications.channel_limit_waits", "{wait}",
		"Times a lane waited for a channel because every one counted against Genesys' limit was in use")
	if err != nil {
		return nil, err
	}
	// Attribute sets are built once; the hot path only looks them up.
	ms.attrs = map[string]metric.AddOption{}
	for _, kv := range [][2]string{
		{"kind", kindEvent}, {"kind", kindHeartbeat}, {"kind", kindSystem}, {"kind", kindMalformed},
		{"outcome", outcomeDelivered}, {"outcome", outcomeIgnored}, {"outcome", outcomeDuplicate},
		{"outcome", outcomeFailed}, {"outcome", outcomeLost},
		{"reason", reasonSocketError}, {"reason", reasonHeartbeatMissed}, {"reason", reasonSocketClosing},
		{"reason", reasonExpiry}, {"reason", reasonUnsubscribed},
		{"origin", originCreated}, {"origin", originReused}, {"origin", originUnknown},
	} {
		ms.attrs[kv[1]] = metric.WithAttributeSet(attribute.NewSet(attribute.String(kv[0], kv[1])))
	}
	return &ms, nil
}

func (m *metrics) message(kind string) { m.messages.Add(context.Background(), 1, m.attrs[kind]) }
func (m *metrics) event(outcome string, n int64) {
	m.events.Add(context.Background(), n, m.attrs[outcome])
}
func (m *metrics) reconnect(reason string) {
	m.reconnects.Add(context.Background(), 1, m.attrs[reason])
}
func (m *metrics) channel(origin string) {
	m.channels.Add(context.Background(), 1, m.attrs[origin])
}
func (m *metrics) limitWait() { m.limitWaits.Add(context.Background(), 1) }
