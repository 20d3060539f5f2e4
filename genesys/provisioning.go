package genesys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/fanbridge/fanbridge/retry"
)

var (
	// ErrInvalidSpec is wrapped by every error EventBridgeSpec.Validate returns; each names the
	// field at fault.
	ErrInvalidSpec = errors.New("genesys: invalid EventBridge integration spec")
	// ErrUnknownTopic is matched by an *UnknownTopicsError: a topic filter that Genesys Cloud does
	// not offer, or does not offer on EventBridge.
	ErrUnknownTopic = errors.New("genesys: unknown topic")
	// ErrImmutableConfig is matched by an *ImmutableChangeError: the existing integration points
	// at another AWS account, region or event source suffix.
	ErrImmutableConfig = errors.New("genesys: integration's event source settings differ")
	// ErrAmbiguousName reports several EventBridge integrations with the spec's name, so that
	// none can be picked safely.
	ErrAmbiguousName = errors.New("genesys: several integrations have this name")
)

// EventBridgeSpec describes the Amazon EventBridge source integration to have.
type EventBridgeSpec struct {
	// Name identifies the integration: EnsureEventBridgeIntegration finds an existing one by it.
	Name string
	// AWSAccountID is the 12-digit AWS account that receives the partner event source.
	AWSAccountID string
	// AWSRegion is the AWS region of the partner event source, such as "us-east-1".
	AWSRegion string
	// EventSourceSuffix ends the partner event source name: at most 64 of [A-Za-z0-9._-].
	EventSourceSuffix string
	// Topics are the EventBridge topic filters, in template form ("v2.users.{id}.presence").
	Topics []string
	// Notes are free text shown in the Genesys Cloud admin UI.
	Notes string
	// OrganizationID is the Genesys organization id used in the partner event source name: a
	// UUID, such as bb14bed0-f8f9-445d-b9d1-10cecb8569d6, in either case. It is written in lower
	// case, as Genesys writes it in the partner event source and in every event's source, so that
	// the name printed is the one AWS knows. When empty it is read from
	// GET /api/v2/organizations/me.
	OrganizationID string
	// Replace allows deleting and re-creating an existing integration whose AWS account, region
	// or suffix differ from the spec (Genesys ties the partner event source to them). Without it
	// such a difference is an *ImmutableChangeError and nothing is written.
	Replace bool
}

var (
	awsAccountRE = regexp.MustCompile(`^[0-9]{12}$`)
	awsRegionRE  = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+){1,3}-[0-9]{1,2}$`)
	suffixRE     = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	topicRE      = regexp.MustCompile(`^[A-Za-z0-9._{}-]+$`)
	// An organization id is a UUID; Genesys writes it in lower case, and either case is taken.
	orgIDRE = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
)

// Validate checks the spec without any request. It returns nil or an error wrapping ErrInvalidSpec
// that names every field at fault.
func (s EventBridgeSpec) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidSpec, field, fmt.Sprintf(format, args...)))
	}
	switch name := strings.TrimSpace(s.Name); {
	case name == "":
		bad("Name", "is empty")
	case len(s.Name) > 200:
		bad("Name", "is longer than 200 bytes")
	case clean(s.Name, 200) != s.Name || name != s.Name:
		bad("Name", "has control or bidirectional formatting characters, or surrounding white space")
	}
	if !awsAccountRE.MatchString(s.AWSAccountID) {
		bad("AWSAccountID", "%q is not 12 digits", clean(s.AWSAccountID, 40))
	}
	if !awsRegionRE.MatchString(s.AWSRegion) {
		bad("AWSRegion", "%q is not an AWS region such as us-east-1", clean(s.AWSRegion, 40))
	}
	if !suffixRE.MatchString(s.EventSourceSuffix) {
		bad("EventSourceSuffix", "%q must be 1 to 64 of A-Z a-z 0-9 . _ -", clean(s.EventSourceSuffix, 80))
	}
	if s.OrganizationID != "" && !orgIDRE.MatchString(s.OrganizationID) {
		bad("OrganizationID", "%q is not an organization id: want a UUID such as bb14bed0-f8f9-445d-b9d1-10cecb8569d6", clean(s.OrganizationID, 80))
	}
	if len(s.Notes) > 2000 {
		bad("Notes", "is longer than 2000 bytes")
	}
	if len(s.Topics) == 0 {
		bad("Topics", "is empty: give at least one topic filter such as v2.users.{id}.presence")
	}
	seen := make(map[string]bool, len(s.Topics))
	for i, t := range s.Topics {
		switch {
		case !topicRE.MatchString(t):
			bad(fmt.Sprintf("Topics[%d]", i), "%q is not a topic filter", clean(t, 200))
		case seen[t]:
			bad(fmt.Sprintf("Topics[%d]", i), "%q is listed twice", t)
		}
		seen[t] = true
	}
	return errors.Join(errs...)
}

// PartnerEventSourceName returns the name of the AWS partner event source the integration
// publishes to: aws.partner/genesys.com/cloud/{orgId}/{suffix}, with orgID in lower case, as
// Genesys writes it. The AWS account links an event bus of this name.
func PartnerEventSourceName(orgID, suffix string) string {
	return "aws.partner/genesys.com/cloud/" + strings.ToLower(orgID) + "/" + suffix
}

// EventBridgeResult tells what EnsureEventBridgeIntegration found and did.
type EventBridgeResult struct {
	// Integration is the integration as it stands after the call, with its reported state.
	// Activation is asynchronous in Genesys Cloud: the state may still be ACTIVATING; read it
	// again later with GetIntegration to see ACTIVE, or ERROR with a reason.
	Integration Integration
	// OrganizationID is the organization id used in PartnerEventSource, in lower case.
	OrganizationID string
	// PartnerEventSource is the partner event source to associate with an event bus in AWS.
	PartnerEventSource string
	// Created reports that the integration was created by this call.
	Created bool
	// Replaced reports that an integration with other event source settings was deleted and
	// created again (EventBridgeSpec.Replace).
	Replaced bool
	// ConfigUpdated reports that the configuration was written.
	ConfigUpdated bool
	// Enabled reports that the integration was switched to ENABLED by this call, or switched on
	// again because it reported ERROR.
	Enabled bool
	// DuplicateDeleted reports that this call created an integration while another run created
	// one of the same name, and deleted its own to carry on with the other (Created is then
	// false): see EnsureEventBridgeIntegration.
	DuplicateDeleted bool
}

// Changed reports whether the call wrote anything.
func (r *EventBridgeResult) Changed() bool {
	return r.Created || r.Replaced || r.ConfigUpdated || r.Enabled || r.DuplicateDeleted
}

// UnknownTopicsError lists topic filters Genesys Cloud does not offer on EventBridge.
type UnknownTopicsError struct {
	// Unknown are topics not in GET /api/v2/notifications/availabletopics.
	Unknown []string
	// NotOnEventBridge are known topics whose transports exclude EventBridge.
	NotOnEventBridge []string
	// Suggestions maps an unknown topic to the template it probably meant, when there is one
	// (a concrete id in place of "{id}").
	Suggestions map[string]string
}

func (e *UnknownTopicsError) Error() string {
	var parts []string
	for _, t := range e.Unknown {
		p := fmt.Sprintf("%q is not an available topic", t)
		if s := e.Suggestions[t]; s != "" {
			p += fmt.Sprintf(" (did you mean %q?)", s)
		}
		parts = append(parts, p)
	}
	for _, t := range e.NotOnEventBridge {
		parts = append(parts, fmt.Sprintf("%q is not available on EventBridge", t))
	}
	return "genesys: unknown topic: " + strings.Join(parts, "; ")
}

// Is matches ErrUnknownTopic.
func (e *UnknownTopicsError) Is(target error) bool { return target == ErrUnknownTopic }

// ImmutableChangeError reports that an existing integration's event source settings differ from
// the spec's. Genesys Cloud ties the partner event source to the AWS account, region and suffix,
// so fanbridge does not change them in place.
type ImmutableChangeError struct {
	IntegrationID string
	Changes       []FieldChange
}

// FieldChange is one setting that differs.
type FieldChange struct {
	Field, Current, Desired string
}

func (e *ImmutableChangeError) Error() string {
	parts := make([]string, len(e.Changes))
	for i, c := range e.Changes {
		parts[i] = fmt.Sprintf("%s is %q, spec wants %q", c.Field, c.Current, c.Desired)
	}
	return fmt.Sprintf("genesys: integration %s: event source settings differ (%s); set Replace (the provision command's -replace) to delete and re-create it",
		e.IntegrationID, strings.Join(parts, ", "))
}

// Is matches ErrImmutableConfig.
func (e *ImmutableChangeError) Is(target error) bool { return target == ErrImmutableConfig }

// maxConflictRetries bounds how often a config write is retried after a version conflict.
const maxConflictRetries = 5

// maxCreateTries bounds how often a creation whose outcome was unclear is tried again.
const maxCreateTries = 3

// lateCreateGrace is how long after a creation with an unclear outcome was sent Genesys may still
// carry it out (a gateway that answered 504 while the backend goes on, a request that outlived
// the client's timeout), as package notifications assumes for channels. It is counted from when
// the failure is seen, not from when the creation began: the client may first wait out 429s (each
// up to MaxRetryAfter), and the lost request goes out after them. Until it has passed, the
// integration is only looked up by name: creating it again could make two.
const lateCreateGrace = 5 * time.Minute

// lateCreateLook is how far apart the looks by name are, after the retry policy's first
// maxCreateTries intervals, while lateCreateGrace runs: about ten lists of the integrations.
const lateCreateLook = 30 * time.Second

// EnsureEventBridgeIntegration makes Genesys Cloud hold exactly one enabled Amazon EventBridge
// source integration named spec.Name, configured as spec says, and returns it with the partner
// event source name to link in AWS. It is idempotent: when everything is already as the spec says,
// it only reads.
//
// The steps, in order: validate the spec (no request); read the organization id unless the spec
// gives it; check every topic filter against the available topics; find the integration by name or
// create it; read the config version and write the config if it differs, re-reading the version on
// a 409 conflict; enable it, or enable it again when it reports ERROR (Genesys checks the config
// when an integration is switched on, and the error may be about a config now replaced). The
// result carries the integration's state as read after the last write. Nothing is written
// before every check has passed.
//
// A creation whose answer is lost (timeout, reset, 5xx) is not blindly repeated: the integrations
// are listed again by name, and only when none is there is the creation tried again.
//
// Runs at the same time with the same spec (two replicas starting, a job run twice) may each find
// no integration and each create one. So a run that created one lists by name again until every
// run can agree on one of them: a run deletes its own creation when another run's is enabled, or
// has a smaller id, and otherwise waits for the others to be deleted by the runs that created them
// or enabled by the run that keeps its own; then it carries on with the one left, and every run
// returns the same integration (DuplicateDeleted reports a run that deleted its own). A run never
// deletes an integration it did not create. One that stays disabled for a minute more than
// WithMaxRetryAfter's ceiling is taken for the leftover of a run that stopped between creating it
// and listing: the run deletes its own and carries on with that one, or, when there are several,
// fails with ErrAmbiguousName.
//
// It needs the integrations:integration:view, add and edit permissions, and delete too: with
// Replace, and for a run that must delete the duplicate it created.
func (c *Client) EnsureEventBridgeIntegration(ctx context.Context, spec EventBridgeSpec) (*EventBridgeResult, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	orgID := spec.OrganizationID
	if orgID == "" {
		org, err := c.Organization(ctx)
		if err != nil {
			return nil, fmt.Errorf("genesys: reading the organization id: %w", err)
		}
		if !orgIDRE.MatchString(org.ID) {
			return nil, fmt.Errorf("genesys: organization answer has no usable id")
		}
		orgID = org.ID
	}
	orgID = strings.ToLower(orgID)
	if err := c.checkEventBridgeTopics(ctx, spec.Topics); err != nil {
		return nil, err
	}
	res := &EventBridgeResult{OrganizationID: orgID, PartnerEventSource: PartnerEventSourceName(orgID, spec.EventSourceSuffix)}

	in, err := c.findEventBridgeIntegration(ctx, spec.Name)
	if err != nil {
		return nil, err
	}
	if in == nil {
		if in, res.Created, res.DuplicateDeleted, err = c.createSettled(ctx, spec.Name); err != nil {
			return nil, err
		}
	}
	if in, err = c.configureEventBridge(ctx, in, spec, res); err != nil {
		return res, err
	}
	switch {
	case in.IntendedState != StateEnabled:
		enabled, err := c.EnableIntegration(ctx, in.ID)
		if err != nil {
			return res, fmt.Errorf("genesys: enabling integration %s: %w", in.ID, err)
		}
		in = enabled
		res.Enabled = true
	case in.ReportedState != nil && in.ReportedState.Code == ReportedError:
		// Switched on before it was configured as it is now (by hand, or by a run that failed
		// after enabling it): the error describes a config that may be gone. Genesys checks the
		// config when an integration is switched on, so switch it on again.
		enabled, err := c.EnableIntegration(ctx, in.ID)
		if err != nil {
			return res, fmt.Errorf("genesys: enabling integration %s again, as it reports %s: %w", in.ID, ReportedError, err)
		}
		in = enabled
		res.Enabled = true
	case res.ConfigUpdated:
		// The state came with the integration, read before the config changed: read it again,
		// so that the result does not report a state of the old config.
		again, err := c.GetIntegration(ctx, in.ID)
		if err != nil {
			return res, fmt.Errorf("genesys: reading integration %s after configuring it: %w", in.ID, err)
		}
		again.Name, again.Notes = spec.Name, spec.Notes
		in = again
	}
	res.Integration = *in
	c.log.LogAttrs(ctx, slog.LevelInfo, "genesys: EventBridge integration ensured",
		slog.String("id", in.ID), slog.Bool("created", res.Created), slog.Bool("config_updated", res.ConfigUpdated),
		slog.Bool("enabled", res.Enabled), slog.String("partner_event_source", res.PartnerEventSource))
	return res, nil
}

// checkEventBridgeTopics fails with an *UnknownTopicsError naming every topic Genesys Cloud does
// not offer on EventBridge.
func (c *Client) checkEventBridgeTopics(ctx context.Context, topics []string) error {
	available, err := c.AvailableTopics(ctx)
	if err != nil {
		return fmt.Errorf("genesys: reading available topics: %w", err)
	}
	byID := make(map[string]Topic, len(available))
	for _, t := range available {
		byID[t.ID] = t
	}
	e := &UnknownTopicsError{}
	for _, t := range topics {
		at, ok := byID[t]
		switch {
		case !ok:
			e.Unknown = append(e.Unknown, t)
			if tmpl := templateOf(t); tmpl != t {
				if _, ok := byID[tmpl]; ok {
					if e.Suggestions == nil {
						e.Suggestions = map[string]string{}
					}
					e.Suggestions[t] = tmpl
				}
			}
		case !at.SupportsEventBridge():
			e.NotOnEventBridge = append(e.NotOnEventBridge, t)
		}
	}
	if len(e.Unknown) > 0 || len(e.NotOnEventBridge) > 0 {
		return e
	}
	return nil
}

// templateOf replaces the segments of a concrete topic that look like entity ids (UUIDs) with
// "{id}", turning "v2.users.<uuid>.presence" into "v2.users.{id}.presence".
func templateOf(topic string) string {
	segs := strings.Split(topic, ".")
	for i, s := range segs {
		if looksLikeID(s) {
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, ".")
}

func looksLikeID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// findEventBridgeIntegration returns the EventBridge integration named name, nil if there is none,
// or an error wrapping ErrAmbiguousName if there are several.
func (c *Client) findEventBridgeIntegration(ctx context.Context, name string) (*Integration, error) {
	found, err := c.eventBridgeNamed(ctx, name)
	if err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return &found[0], nil
	default:
		return nil, ambiguousName(name, found)
	}
}

// createEventBridgeIntegration creates the integration. After a failure with an unclear outcome
// it looks the integration up by name, after waits that grow with each look, and creates it
// again only once lateCreateGrace has passed since that failure, so that a lost answer, or a
// creation Genesys carries out late, never yields two. When ctx ends first, or a lookup fails,
// the error says so and wraps ErrOutcomeUnknown. It reports whether the integration returned is
// certainly this run's: the one a creation's answer named, rather than one found by name.
func (c *Client) createEventBridgeIntegration(ctx context.Context, name string) (in *Integration, ours bool, err error) {
	created := false // a 2xx answer said so: only looked up from then on
	creations := 0
	var failed time.Time // when the last creation with an unclear outcome failed
	for look := 1; ; look++ {
		if !created && (creations == 0 || c.clock.Now().Sub(failed) >= lateCreateGrace) {
			if creations == maxCreateTries {
				break
			}
			creations++
			in, err = c.createIntegration(ctx, EventBridgeIntegrationType, name)
			failed = c.clock.Now()
			if err == nil {
				return in, true, nil
			}
			if !errors.Is(err, ErrOutcomeUnknown) {
				return nil, false, fmt.Errorf("genesys: creating EventBridge integration: %w", err)
			}
			created = errors.Is(err, errCreatedUnusable)
			look = 1
		} else if created && look > maxCreateTries {
			break
		}
		if cerr := ctx.Err(); cerr != nil {
			// The context ended during the creation (Ctrl-C on the command, a timeout): there is
			// nothing to wait for.
			return nil, false, unclearCreation(err, cerr)
		}
		// A gateway can answer while the backend is still creating the integration: looking at
		// once could miss it. Wait as long as the server asked (up to MaxRetryAfter), and at
		// least the retry policy's interval, growing with each look.
		wait := c.retrier.Interval(look)
		if look > maxCreateTries {
			wait = max(wait, lateCreateLook)
		}
		if d, ok := retry.RetryAfter(err); ok && look == 1 {
			wait = max(wait, min(d, c.maxRetryAfter))
		}
		c.log.LogAttrs(ctx, slog.LevelWarn, "genesys: creating the integration had an unclear outcome; looking it up by name after a wait",
			slog.String("name", name), slog.Int("creations", creations), slog.Duration("wait", wait), slog.String("error", err.Error()))
		if werr := retry.Sleep(ctx, c.clock, wait); werr != nil {
			return nil, false, unclearCreation(err, werr)
		}
		found, ferr := c.findEventBridgeIntegration(ctx, name)
		if ferr != nil {
			// The run ends without knowing whether Genesys holds (or will hold) the integration.
			return nil, false, unclearCreation(err, ferr)
		}
		if found != nil {
			return found, false, nil
		}
	}
	if created {
		return nil, false, fmt.Errorf("genesys: creating EventBridge integration: Genesys created it, but a lookup by name did not find it yet; run again to configure it: %w", err)
	}
	return nil, false, fmt.Errorf("genesys: creating EventBridge integration: %w", err)
}

// createSettled creates the integration and settles it against runs that created one of the same
// name at the same time (see settleCreation). It reports whether the integration returned is the
// one this run created, and whether this run deleted its own as a duplicate.
func (c *Client) createSettled(ctx context.Context, name string) (in *Integration, kept, deletedOwn bool, err error) {
	in, ours, err := c.createEventBridgeIntegration(ctx, name)
	if err != nil {
		return nil, false, false, err
	}
	if !ours {
		// Found by name, alone, after a creation whose answer was lost: most likely this run's,
		// and nothing to settle.
		return in, true, false, nil
	}
	s, err := c.settleCreation(ctx, name, in)
	if err != nil {
		return nil, false, s.deleted, err
	}
	return s.in, s.kept, s.deleted, nil
}

// unclearCreation is the error of a run that ends with then after a creation failed with the
// unclear outcome err, which wraps ErrOutcomeUnknown: it says what to do next.
func unclearCreation(err, then error) error {
	return fmt.Errorf("genesys: creating EventBridge integration: %w (and then %w); Genesys may still create it: look it up, or run again after %v", err, then, lateCreateGrace)
}

// The property names of the EventBridge integration's configuration.
const (
	propAccount = "awsAccountId"
	propRegion  = "awsAccountRegion"
	propSuffix  = "eventSourceSuffix"
	propFilter  = "eventFilter"
)

// configureEventBridge writes the spec into the integration's config unless it is already there,
// surviving version conflicts. It returns the integration, which is a new one after a Replace.
func (c *Client) configureEventBridge(ctx context.Context, in *Integration, spec EventBridgeSpec, res *EventBridgeResult) (*Integration, error) {
	wrote := false
	conflicted := -1 // the version of a repeated write refused with a 409, if the last one was
	for attempt := 1; ; attempt++ {
		cur, err := c.GetIntegrationConfig(ctx, in.ID)
		if err != nil {
			return nil, fmt.Errorf("genesys: reading config of integration %s: %w", in.ID, err)
		}
		if changes := immutableChanges(cur, spec); len(changes) > 0 {
			if !spec.Replace || res.Replaced {
				return nil, &ImmutableChangeError{IntegrationID: in.ID, Changes: changes}
			}
			c.log.LogAttrs(ctx, slog.LevelWarn, "genesys: replacing integration with other event source settings",
				slog.String("id", in.ID))
			if err := c.DeleteIntegration(ctx, in.ID); err != nil && !IsNotFound(err) {
				return nil, fmt.Errorf("genesys: deleting integration %s to replace it: %w", in.ID, err)
			}
			res.Replaced = true
			var deletedOwn bool
			in, _, deletedOwn, err = c.createSettled(ctx, spec.Name)
			res.DuplicateDeleted = res.DuplicateDeleted || deletedOwn
			if err != nil {
				return nil, err
			}
			continue
		}
		desired := desiredConfig(cur, spec)
		if configMatches(cur, desired) {
			// A write refused with a 409 may still be this run's: when the answer to the first
			// try is lost, the client sends it again, and the version that try stored, one past
			// the version written, refuses the repeat. A 409 at the first try wrote nothing.
			wrote = wrote || conflicted >= 0 && cur.Version == conflicted+1
			res.ConfigUpdated = res.ConfigUpdated || wrote
			in.Name, in.Notes = spec.Name, spec.Notes
			return in, nil
		}
		_, repeated, err := c.putIntegrationConfig(ctx, in.ID, desired)
		// A version conflict wrote nothing, unless an earlier try of the same request did (see
		// above): if the config read again then matches, another writer stored it.
		wrote = wrote || !IsConflict(err)
		conflicted = -1
		if IsConflict(err) && repeated {
			conflicted = desired.Version
		}
		switch {
		case err == nil:
			res.ConfigUpdated = true
			in.Name, in.Notes = spec.Name, spec.Notes
			return in, nil
		case IsConflict(err) && attempt < maxConflictRetries:
			c.log.LogAttrs(ctx, slog.LevelInfo, "genesys: config version conflict, reading it again",
				slog.String("id", in.ID), slog.Int("version", desired.Version), slog.Int("attempt", attempt))
		default:
			return nil, fmt.Errorf("genesys: writing config of integration %s: %w", in.ID, err)
		}
	}
}

// immutableChanges lists the event source settings that are set in cur and differ from spec.
func immutableChanges(cur *IntegrationConfig, spec EventBridgeSpec) []FieldChange {
	var out []FieldChange
	for _, f := range []struct{ prop, want string }{
		{propAccount, spec.AWSAccountID}, {propRegion, spec.AWSRegion}, {propSuffix, spec.EventSourceSuffix},
	} {
		if have := stringProp(cur.Properties, f.prop); have != "" && have != f.want {
			out = append(out, FieldChange{Field: f.prop, Current: have, Desired: f.want})
		}
	}
	return out
}

func stringProp(props map[string]json.RawMessage, key string) string {
	var s string
	if raw, ok := props[key]; ok {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

// desiredConfig returns cur with the spec written over it; properties fanbridge does not manage,
// and the advanced and credentials sections, are kept as they are.
func desiredConfig(cur *IntegrationConfig, spec EventBridgeSpec) *IntegrationConfig {
	props := make(map[string]json.RawMessage, len(cur.Properties)+4)
	for k, v := range cur.Properties {
		props[k] = v
	}
	set := func(k string, v any) {
		b, _ := json.Marshal(v)
		props[k] = b
	}
	set(propAccount, spec.AWSAccountID)
	set(propRegion, spec.AWSRegion)
	set(propSuffix, spec.EventSourceSuffix)
	set(propFilter, spec.Topics)
	return &IntegrationConfig{
		Name:        spec.Name,
		Notes:       spec.Notes,
		Version:     cur.Version,
		Properties:  props,
		Advanced:    orEmptyObject(cur.Advanced),
		Credentials: orEmptyObject(cur.Credentials),
	}
}

func orEmptyObject(raw json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return json.RawMessage(`{}`)
	}
	return raw
}

// configMatches reports whether cur already holds what desired says. The event filter is compared
// as a set: its order carries no meaning.
func configMatches(cur, desired *IntegrationConfig) bool {
	if cur.Name != desired.Name || cur.Notes != desired.Notes {
		return false
	}
	for _, k := range []string{propAccount, propRegion, propSuffix} {
		if stringProp(cur.Properties, k) != stringProp(desired.Properties, k) {
			return false
		}
	}
	var have, want []string
	if json.Unmarshal(cur.Properties[propFilter], &have) != nil {
		return false
	}
	_ = json.Unmarshal(desired.Properties[propFilter], &want)
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}
