package genesys

import (
	"context"
	"net/url"
	"strings"
)

// Transport names found in a topic's Transports.
const (
	TransportAll         = "All"
	TransportWebSocket   = "Websocket"
	TransportEventBridge = "EventBridge"
)

// Topic is a notification topic Genesys Cloud offers, in template form: "{id}" stands for any
// entity id, as in "v2.users.{id}.presence".
type Topic struct {
	ID          string `json:"id"`
	Description string `json:"description,omitempty"`
	// Transports lists what carries the topic ("All", "Websocket", "EventBridge"); empty when the
	// server did not say.
	Transports []string `json:"transports,omitempty"`
	// Visibility is "Public" or "Preview", when the server says.
	Visibility string `json:"visibility,omitempty"`
}

// SupportsEventBridge reports whether the topic can be used in an EventBridge integration's event
// filter. A topic whose transports are unknown is assumed to support it.
func (t Topic) SupportsEventBridge() bool {
	if len(t.Transports) == 0 {
		return true
	}
	for _, tr := range t.Transports {
		if strings.EqualFold(tr, TransportAll) || strings.EqualFold(tr, TransportEventBridge) {
			return true
		}
	}
	return false
}

// AvailableTopics returns the notification topics the organization offers
// (GET /api/v2/notifications/availabletopics, which needs no permission), with their transports
// and visibility expanded, Preview topics included. The listing is not paged.
func (c *Client) AvailableTopics(ctx context.Context) ([]Topic, error) {
	var l struct {
		Entities []Topic `json:"entities"`
	}
	q := url.Values{"expand": {"transports,visibility"}, "includePreview": {"true"}}
	if err := c.do(ctx, get("/api/v2/notifications/availabletopics", q), &l); err != nil {
		return nil, err
	}
	return l.Entities, nil
}
