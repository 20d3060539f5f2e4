package genesys

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/fanbridge/fanbridge/retry"
)

// settleLook caps the wait between two looks while a creation settles.
const settleLook = 5 * time.Second

// settleWait is how long a run that created an integration waits for the other integrations of
// the same name to be deleted by the runs that created them, or enabled by one that keeps its
// own, before it takes one that stays for a leftover: a minute more than the longest Retry-After
// the client waits for, so that a run whose DELETE met a 429 still has time to send it.
func (c *Client) settleWait() time.Duration { return time.Minute + c.maxRetryAfter }

// eventBridgeNamed lists the EventBridge integrations named name.
func (c *Client) eventBridgeNamed(ctx context.Context, name string) ([]Integration, error) {
	all, err := c.ListEventBridgeIntegrations(ctx)
	if err != nil {
		return nil, fmt.Errorf("genesys: listing EventBridge integrations: %w", err)
	}
	var found []Integration
	for _, in := range all {
		if in.Name == name {
			found = append(found, in)
		}
	}
	return found, nil
}

// settled is what settleCreation ends with.
type settled struct {
	in *Integration
	// kept reports that in is the integration this run created.
	kept bool
	// deleted reports that this run deleted the integration it created, as a duplicate.
	deleted bool
}

// settleCreation makes runs that created an integration of the same name at the same time end
// with one, which all of them return. Each run first lists by name and creates only when it
// finds none, so two runs at once can both create; each then calls settleCreation with its own
// creation, own, and lists by name again until its choice is made:
//
//   - own is the only one: it is kept. Two runs cannot both see only their own, as each created
//     its own before listing.
//   - own is ENABLED: another run, which deleted its own for it, took it and enabled it, and may
//     have returned it: it is kept, whatever else the listing holds (a later run's creation,
//     which that run deletes on seeing own enabled).
//   - another is ENABLED: a run enables its integration only once it has kept it, so that one was
//     kept (or made by hand): own is deleted, and the run carries on with that one (with the
//     smallest id if there are several).
//   - none is enabled, and another has a smaller id than own: own is deleted, and the run waits
//     until only one is left, and carries on with it.
//   - none is enabled, and own has the smallest id: the others belong to runs that will delete
//     theirs on seeing own, or to a run that saw only its own (it created it before this run did,
//     and listed before this run's creation) and will enable it. The run waits for either.
//
// Ids are random, not in the order of creation; the rule about enabled integrations is what
// settles the case where the run with the smallest id created it last.
//
// An integration of the name that stays disabled for settleWait is taken for a leftover (a run
// that stopped between creating it and listing): the run deletes its own and carries on with it
// when it is the only other one, and fails with ErrAmbiguousName otherwise. A run never deletes
// an integration it did not create.
func (c *Client) settleCreation(ctx context.Context, name string, own *Integration) (settled, error) {
	ownID := own.ID // "" once this run has deleted its own
	res := settled{}
	deleteOwn := func(why string) error {
		c.log.LogAttrs(ctx, slog.LevelInfo, "genesys: another run created an integration of the same name; deleting this run's",
			slog.String("id", ownID), slog.String("name", name), slog.String("reason", why))
		if err := c.DeleteIntegration(ctx, ownID); err != nil && !IsNotFound(err) {
			return fmt.Errorf("genesys: deleting integration %s, created by this run while another run created one named %q: %w; delete it",
				ownID, name, err)
		}
		ownID, res.deleted = "", true
		return nil
	}
	start := c.clock.Now()
	deadline := start.Add(c.settleWait())
	for look := 1; ; look++ {
		named, err := c.eventBridgeNamed(ctx, name)
		if err != nil {
			if ownID != "" {
				return res, fmt.Errorf("genesys: checking that integration %s, just created, is the only one named %q: %w; run again",
					ownID, name, err)
			}
			return res, err
		}
		// A listing that does not show own yet counts it all the same: only this run deletes it.
		var others, enabled []Integration
		for _, in := range named {
			switch {
			case in.ID == ownID && in.IntendedState == StateEnabled:
				// Another run took own (it deleted its own for it) and enabled it, and may have
				// returned it already: own is the one every run ends with.
				res.in, res.kept = &in, true
				return res, nil
			case in.ID == ownID:
			case in.IntendedState == StateEnabled:
				others, enabled = append(others, in), append(enabled, in)
			default:
				others = append(others, in)
			}
		}
		byID := func(a, b Integration) int { return strings.Compare(a.ID, b.ID) }
		slices.SortFunc(others, byID)
		slices.SortFunc(enabled, byID)
		switch {
		case len(others) == 0 && ownID != "":
			res.in, res.kept = own, true
			return res, nil
		case len(others) == 0:
			return res, fmt.Errorf("%w: every integration named %q, this run's included, was deleted while it was being created; run again",
				ErrOutcomeUnknown, name)
		case len(enabled) > 0:
			if ownID != "" {
				if err := deleteOwn("another is enabled"); err != nil {
					return res, err
				}
			}
			if len(enabled) > 1 {
				return res, ambiguousName(name, enabled)
			}
			res.in = &enabled[0]
			return res, nil
		case ownID != "" && others[0].ID < ownID:
			if err := deleteOwn("another has a smaller id"); err != nil {
				return res, err
			}
			continue // look again: the one left may be deleted by its own run
		case ownID == "" && len(others) == 1:
			res.in = &others[0]
			return res, nil
		}
		if !c.clock.Now().Before(deadline) {
			// What stays disabled this long is a leftover of a run that stopped.
			if ownID != "" {
				if err := deleteOwn("another stayed disabled"); err != nil {
					return res, err
				}
			}
			if len(others) > 1 {
				return res, ambiguousName(name, others)
			}
			res.in = &others[0]
			return res, nil
		}
		// Quick looks at first, when the other runs are still at work; then they grow with the
		// time spent, up to settleLook.
		now := c.clock.Now()
		wait := min(max(c.retrier.Interval(look), now.Sub(start)/4), settleLook, deadline.Sub(now))
		if err := retry.Sleep(ctx, c.clock, wait); err != nil {
			if ownID != "" {
				return res, fmt.Errorf("genesys: integration %s was created while another run created one named %q, and the run ended before they settled (%w); run again, or delete all but one",
					ownID, name, err)
			}
			return res, fmt.Errorf("genesys: waiting for the integrations named %q to settle: %w; run again", name, err)
		}
	}
}

// ambiguousName is the error for several integrations named name, none of which can be picked.
func ambiguousName(name string, found []Integration) error {
	ids := make([]string, len(found))
	for i, in := range found {
		ids[i] = in.ID
	}
	return fmt.Errorf("%w: %q is the name of integrations %s; delete or rename all but one",
		ErrAmbiguousName, name, strings.Join(ids, ", "))
}
