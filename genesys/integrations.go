package genesys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/fanbridge/fanbridge/retry"
)

// EventBridgeIntegrationType is the integration type of Genesys Cloud's Amazon EventBridge source.
const EventBridgeIntegrationType = "amazon-eventbridge-source"

// Integration states, as Genesys Cloud reports them.
const (
	StateEnabled   = "ENABLED"  // intendedState: the integration should run
	StateDisabled  = "DISABLED" // intendedState: the integration should not run
	ReportedActive = "ACTIVE"   // reportedState.code: it runs
	ReportedError  = "ERROR"    // reportedState.code: it failed to start (see ReportedState.Message)
)

// Integration is an installed Genesys Cloud integration.
type Integration struct {
	ID              string          `json:"id"`
	Name            string          `json:"name"`
	IntegrationType IntegrationType `json:"integrationType"`
	Notes           string          `json:"notes,omitempty"`
	// IntendedState is what the integration should be: ENABLED, DISABLED or DELETED.
	IntendedState string `json:"intendedState,omitempty"`
	// ReportedState is what Genesys Cloud says it is; nil when it has not reported yet.
	ReportedState *ReportedState `json:"reportedState,omitempty"`
}

func (in *Integration) checkIDs() error { return checkID("integration", in.ID) }

// IntegrationType names the kind of an integration.
type IntegrationType struct {
	ID string `json:"id"`
}

// ReportedState is an integration's reported status.
type ReportedState struct {
	// Code is ACTIVE, ACTIVATING, INACTIVE, DEACTIVATING or ERROR.
	Code string `json:"code"`
	// Effective is a human-readable state.
	Effective string `json:"effective,omitempty"`
	// Detail explains an ERROR, when Genesys gives a reason.
	Detail *StateDetail `json:"detail,omitempty"`
	// LastUpdated is when the state last changed.
	LastUpdated time.Time `json:"lastUpdated,omitzero"`
}

// StateDetail is the explanation attached to a reported state.
type StateDetail struct {
	Message string `json:"message,omitempty"`
}

// IntegrationConfig is an integration's current configuration, versioned: a write must carry the
// version it was read at, and fails with a 409 when someone wrote in between.
type IntegrationConfig struct {
	Name        string                     `json:"name"`
	Notes       string                     `json:"notes"`
	Version     int                        `json:"version"`
	Properties  map[string]json.RawMessage `json:"properties"`
	Advanced    json.RawMessage            `json:"advanced,omitempty"`
	Credentials json.RawMessage            `json:"credentials,omitempty"`
}

// integrationListing is one page of GET /api/v2/integrations.
type integrationListing struct {
	Entities   []Integration `json:"entities"`
	PageSize   int           `json:"pageSize"`
	PageNumber int           `json:"pageNumber"`
	Total      int           `json:"total"`
	PageCount  int           `json:"pageCount"`
}

func (l *integrationListing) checkIDs() error {
	for i := range l.Entities {
		if err := l.Entities[i].checkIDs(); err != nil {
			return err
		}
	}
	return nil
}

// listPageSize is the page size asked for when listing; 100 is the API's largest.
const listPageSize = 100

// maxListPages bounds paging, so that a server that keeps reporting more pages cannot loop us.
const maxListPages = 1000

// ListIntegrations returns every integration of the given type (all types when typeID is ""),
// following the pages of GET /api/v2/integrations. It needs the integrations:integration:view
// permission.
func (c *Client) ListIntegrations(ctx context.Context, typeID string) ([]Integration, error) {
	var all []Integration
	for page := 1; page <= maxListPages; page++ {
		q := url.Values{"pageSize": {strconv.Itoa(listPageSize)}, "pageNumber": {strconv.Itoa(page)}}
		if typeID != "" {
			q.Set("integrationType", typeID)
		}
		var l integrationListing
		if err := c.do(ctx, get("/api/v2/integrations", q), &l); err != nil {
			return nil, err
		}
		for _, in := range l.Entities {
			// Filter here too: the type parameter narrows the listing, the check makes sure.
			if typeID == "" || in.IntegrationType.ID == typeID {
				all = append(all, in)
			}
		}
		if len(l.Entities) == 0 || page >= l.PageCount {
			return all, nil
		}
	}
	return nil, fmt.Errorf("genesys: listing integrations: more than %d pages", maxListPages)
}

// ListEventBridgeIntegrations returns every Amazon EventBridge source integration.
func (c *Client) ListEventBridgeIntegrations(ctx context.Context) ([]Integration, error) {
	return c.ListIntegrations(ctx, EventBridgeIntegrationType)
}

// GetIntegration returns the integration with the given id; the error matches ErrNotFound when
// there is none.
func (c *Client) GetIntegration(ctx context.Context, id string) (*Integration, error) {
	if id == "" {
		return nil, fmt.Errorf("genesys: GetIntegration: empty id")
	}
	var in Integration
	if err := c.do(ctx, get("/api/v2/integrations/"+url.PathEscape(id), nil), &in); err != nil {
		return nil, err
	}
	return &in, nil
}

// EnableIntegration sets the integration's intended state to ENABLED and returns it with the state
// Genesys reports.
func (c *Client) EnableIntegration(ctx context.Context, id string) (*Integration, error) {
	return c.setIntendedState(ctx, id, StateEnabled)
}

// DisableIntegration sets the integration's intended state to DISABLED and returns it.
func (c *Client) DisableIntegration(ctx context.Context, id string) (*Integration, error) {
	return c.setIntendedState(ctx, id, StateDisabled)
}

func (c *Client) setIntendedState(ctx context.Context, id, state string) (*Integration, error) {
	if id == "" {
		return nil, fmt.Errorf("genesys: setting integration state: empty id")
	}
	var in Integration
	err := c.do(ctx, request{
		method: http.MethodPatch, path: "/api/v2/integrations/" + url.PathEscape(id),
		body: map[string]string{"intendedState": state}, repeatable: true,
	}, &in)
	if err != nil {
		return nil, err
	}
	return &in, nil
}

// DeleteIntegration deletes the integration. Deleting one that is already gone returns an error
// matching ErrNotFound.
func (c *Client) DeleteIntegration(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("genesys: DeleteIntegration: empty id")
	}
	return c.do(ctx, request{method: http.MethodDelete, path: "/api/v2/integrations/" + url.PathEscape(id), repeatable: true}, nil)
}

// createIntegration installs a new integration of the given type. It is not repeated on an unclear
// failure (the error then matches ErrOutcomeUnknown): a blind retry could install two. A success
// answer that cannot be used (a body cut off, one that does not decode, one without an id, or one
// whose id is refused, see checkID) matches ErrOutcomeUnknown too: Genesys answered 2xx, so it did
// install one, which a lookup by name can find.
func (c *Client) createIntegration(ctx context.Context, typeID, name string) (*Integration, error) {
	body := map[string]any{"integrationType": IntegrationType{ID: typeID}}
	if name != "" {
		// The create request model has a name; setting it here (and again in the config) lets a
		// caller find an integration whose creation answer was lost.
		body["name"] = name
	}
	var in Integration
	err := c.do(ctx, request{method: http.MethodPost, path: "/api/v2/integrations", body: body}, &in)
	var dErr *decodeError
	var tErr *transportError
	switch {
	case errors.As(err, &dErr), errors.As(err, &tErr) && tErr.successCutOff():
		return nil, retry.Permanent(fmt.Errorf("%w: %w: %w", ErrOutcomeUnknown, errCreatedUnusable, err))
	case err != nil:
		return nil, err
	case in.ID == "":
		return nil, retry.Permanent(fmt.Errorf("%w: %w: success answer without id", ErrOutcomeUnknown, errCreatedUnusable))
	}
	return &in, nil
}

// errCreatedUnusable marks a creation Genesys answered 2xx, so certainly made, whose answer could
// not be used: it must be looked up, never made again.
var errCreatedUnusable = errors.New("genesys: POST /api/v2/integrations")

// GetIntegrationConfig returns the integration's current configuration and its version.
func (c *Client) GetIntegrationConfig(ctx context.Context, id string) (*IntegrationConfig, error) {
	var cfg IntegrationConfig
	if err := c.do(ctx, get("/api/v2/integrations/"+url.PathEscape(id)+"/config/current", nil), &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// putIntegrationConfig writes cfg, which must carry the version it was read at; a stale version
// fails with an error matching ErrConflict. It also reports whether the request was sent more
// than once: then a try whose answer was lost may have stored cfg before a later one met the
// version that try made.
func (c *Client) putIntegrationConfig(ctx context.Context, id string, cfg *IntegrationConfig) (*IntegrationConfig, bool, error) {
	var out IntegrationConfig
	tries := 0
	err := c.do(ctx, request{
		method: http.MethodPut, path: "/api/v2/integrations/" + url.PathEscape(id) + "/config/current",
		body: cfg, repeatable: true, tries: &tries,
	}, &out)
	if err != nil {
		return nil, tries > 1, err
	}
	return &out, tries > 1, nil
}
