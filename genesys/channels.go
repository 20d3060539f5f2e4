package genesys

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fanbridge/fanbridge/retry"
)

// Limits of the WebSocket Notification API.
const (
	// MaxTopicsPerChannel is how many topics one channel may subscribe; more is a 400.
	MaxTopicsPerChannel = 1000
	// MaxChannels is how many channels one OAuth client may hold; creating another evicts the
	// oldest, even one with a socket in use. A channel counts until it expires, whether or not a
	// socket is connected to it.
	MaxChannels = 20
	// ChannelLifetime is how long a channel lives after its creation.
	ChannelLifetime = 24 * time.Hour
)

var (
	// ErrTemplateTopic reports a subscription topic with a "{id}" placeholder: the WebSocket API
	// needs concrete ids ("v2.users.<uuid>.presence"). Templates are for EventBridge filters.
	ErrTemplateTopic = errors.New("genesys: WebSocket topics need concrete ids, not {id} templates")
	// ErrTooManyTopics reports more topics than one channel can subscribe (MaxTopicsPerChannel).
	ErrTooManyTopics = errors.New("genesys: too many topics for one channel")
)

// Channel is a notification channel: a WebSocket address that receives the events of the topics
// subscribed to it, until Expires.
type Channel struct {
	ID         string    `json:"id"`
	ConnectURI string    `json:"connectUri"`
	Expires    time.Time `json:"expires"`
}

func (ch *Channel) checkIDs() error { return checkID("channel", ch.ID) }

// CreateChannel opens a new notification channel (POST /api/v2/notifications/channels).
//
// The creation is sent again only when it certainly did not reach Genesys (a refused connection, a
// failure while the connection was being made, when no earlier copy of it had one: see the package
// documentation, which says when that errs on the side of an unclear outcome) or when Genesys
// refused it (a 429, which Genesys answers before doing any work). A context cancelled before
// the request had a connection returns the context's error. After an unclear failure (a 5xx, a timeout, a connection broken or a
// context cancelled once the request had a connection) the channel may exist
// anyway, and creating another would make Genesys hold one more channel than the caller knows of,
// so CreateChannel returns an error wrapping ErrOutcomeUnknown instead. Genesys offers no way to
// delete a channel; a caller that counts its channels against MaxChannels should count such a
// creation as a channel that lives ChannelLifetime from now (package genesys/notifications does).
// A success answer that cannot be used (a body that does not decode, one without id or
// connectUri, or one whose id is refused, see the package documentation) wraps ErrOutcomeUnknown
// too: Genesys answered 2xx, so it did create a channel, which counts against MaxChannels although
// it cannot be connected.
func (c *Client) CreateChannel(ctx context.Context) (*Channel, error) {
	var ch Channel
	err := c.do(ctx, request{method: http.MethodPost, path: "/api/v2/notifications/channels"}, &ch)
	var dErr *decodeError
	switch {
	case errors.As(err, &dErr):
		return nil, retry.Permanent(fmt.Errorf("%w: %w", ErrOutcomeUnknown, err))
	case err != nil:
		return nil, err
	case ch.ID == "" || ch.ConnectURI == "":
		return nil, retry.Permanent(fmt.Errorf("%w: genesys: POST /api/v2/notifications/channels: success answer without id or connectUri", ErrOutcomeUnknown))
	}
	return &ch, nil
}

// SetSubscriptions replaces the channel's subscriptions with topics
// (PUT /api/v2/notifications/channels/{id}/subscriptions). Topics must be concrete (see
// ErrTemplateTopic) and at most MaxTopicsPerChannel; both are checked before any request.
func (c *Client) SetSubscriptions(ctx context.Context, channelID string, topics []string) error {
	if channelID == "" {
		return fmt.Errorf("genesys: SetSubscriptions: empty channel id")
	}
	if err := CheckSubscriptionTopics(topics); err != nil {
		return err
	}
	if len(topics) > MaxTopicsPerChannel {
		return fmt.Errorf("%w: %d topics, at most %d", ErrTooManyTopics, len(topics), MaxTopicsPerChannel)
	}
	body := make([]map[string]string, len(topics))
	for i, t := range topics {
		body[i] = map[string]string{"id": t}
	}
	return c.do(ctx, request{
		method: http.MethodPut, path: "/api/v2/notifications/channels/" + url.PathEscape(channelID) + "/subscriptions",
		body: body, repeatable: true,
	}, nil)
}

// CheckSubscriptionTopics reports the first topic that cannot be subscribed on a WebSocket channel:
// empty, with white space, or a "{id}" template (ErrTemplateTopic).
func CheckSubscriptionTopics(topics []string) error {
	for _, t := range topics {
		switch {
		case t == "":
			return fmt.Errorf("genesys: empty subscription topic")
		case strings.ContainsAny(t, " \t\r\n"):
			return fmt.Errorf("genesys: subscription topic %q contains white space", clean(t, 200))
		case strings.ContainsAny(t, "{}"):
			return fmt.Errorf("%w: %q", ErrTemplateTopic, clean(t, 200))
		}
	}
	return nil
}
