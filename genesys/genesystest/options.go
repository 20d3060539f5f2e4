package genesystest

import (
	"fmt"
	"time"
)

// Default credentials the fake accepts.
const (
	DefaultClientID     = "fanbridge-test-client"
	DefaultClientSecret = "fanbridge-test-secret-3f9a"
	// DefaultOrganizationID is the organization GET /api/v2/organizations/me returns.
	DefaultOrganizationID = "32aa07aa-db1b-4987-abd0-9483601ec29d"
)

// Option configures a Server.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	clientID, clientSecret string
	tokenLifetime          time.Duration
	now                    func() time.Time
	orgID                  string
	heartbeat              time.Duration
	channelLifetime        time.Duration
	maxPageSize            int
	socketClosingDelay     time.Duration
	integrationID          func(n int) string
}

func defaults() options {
	return options{
		clientID:           DefaultClientID,
		clientSecret:       DefaultClientSecret,
		tokenLifetime:      24 * time.Hour,
		now:                time.Now,
		orgID:              DefaultOrganizationID,
		heartbeat:          30 * time.Second,
		channelLifetime:    24 * time.Hour,
		maxPageSize:        100,
		socketClosingDelay: DefaultSocketClosingDelay,
		integrationID:      func(n int) string { return fmt.Sprintf("6b1f0c9e-0000-4000-9000-%012d", n) },
	}
}

// WithCredentials sets the OAuth client id and secret the token endpoint accepts. The default is
// DefaultClientID and DefaultClientSecret.
func WithCredentials(id, secret string) Option {
	return optionFunc(func(o *options) { o.clientID, o.clientSecret = id, secret })
}

// WithTokenLifetime sets the expires_in of issued tokens; the API refuses a token with a 401 once
// it is older. The default is 24h, Genesys' default.
func WithTokenLifetime(d time.Duration) Option {
	return optionFunc(func(o *options) { o.tokenLifetime = d })
}

// WithClock sets the time source for token lifetimes and channel expiry dates (pass the Now of a
// fake clock). The default is time.Now.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(o *options) { o.now = now })
}

// WithOrganizationID sets the organization id. The default is DefaultOrganizationID.
func WithOrganizationID(id string) Option {
	return optionFunc(func(o *options) { o.orgID = id })
}

// WithHeartbeatInterval sets how often connected sockets get a heartbeat; zero sends none. The
// default is 30s, as Genesys does.
func WithHeartbeatInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.heartbeat = d })
}

// WithChannelLifetime sets how long a notification channel lives; its socket is closed when it
// expires. The default is 24h, as Genesys does.
func WithChannelLifetime(d time.Duration) Option {
	return optionFunc(func(o *options) { o.channelLifetime = d })
}

// WithMaxPageSize caps the page size of the integrations listing, so that tests can make paging
// happen with few integrations. The default is 100.
func WithMaxPageSize(n int) Option {
	return optionFunc(func(o *options) { o.maxPageSize = n })
}

// DefaultSocketClosingDelay is how long after v2.system.socket_closing the fake closes the sockets
// that got the notice, as Genesys does about a minute later.
const DefaultSocketClosingDelay = time.Minute

// WithSocketClosingDelay sets how long after SendSocketClosing the sockets that got the notice are
// closed, so that a client that is late to replace them loses what is published afterwards, as it
// would with Genesys. The delay runs in real time: the clock of WithClock only reads the time. Zero
// closes them right after the notice; a negative delay leaves them open. The default is
// DefaultSocketClosingDelay (1 minute).
func WithSocketClosingDelay(d time.Duration) Option {
	return optionFunc(func(o *options) { o.socketClosingDelay = d })
}

// WithIntegrationIDs sets how the id of the nth integration installed (n counts from 1) is made.
// Genesys makes random UUIDs, whose order says nothing of the order of creation; the default makes
// ids that sort in the order of creation, 6b1f0c9e-0000-4000-9000-000000000001 and so on, and a
// test of a client that must not rely on that order gives ids that sort the other way. Ids must
// be unique.
func WithIntegrationIDs(id func(n int) string) Option {
	return optionFunc(func(o *options) { o.integrationID = id })
}
