package notifications

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/retry"
)

// lateCreationGrace is how long after its failure was seen the source takes a creation whose
// answer was lost to be still liable to be carried out by Genesys. It is well above the genesys
// client's default per-attempt timeout (60 seconds), after which the request may still wait in
// Genesys' queue, and above what a backend may go on working behind a gateway that answered 502
// or 504.
const lateCreationGrace = 5 * time.Minute

// clockSkew is how far ahead of the local clock Genesys' may be before a channel expiry more than
// 24 hours away is worth a warning.
const clockSkew = time.Minute

// account is the source's record of the channels Genesys may hold for it, in the order their
// creations were sent. Genesys keeps a channel for 24 hours whatever becomes of its socket (a
// channel cannot be deleted), counts every one against 20 per OAuth client, and when another is
// created evicts the oldest, even one in use. The record keeps one rule: creating a channel never
// makes Genesys evict a channel of the source that a lane is using.
//
// The record holds three kinds of items: channels the source created, creations under way, and
// placeholders for creations whose answer was lost (genesys.ErrOutcomeUnknown), which Genesys may
// or may not carry out. The failure seen does not mean Genesys is done with the request: a client
// that gave up waiting, a gateway's 502 or 504, a broken connection leave it queued behind, so
// Genesys may create the channel later, up to lateCreationGrace after the failure. A placeholder
// counts as a channel until ChannelLifetime after that, later than the channel it stands for would
// expire, and is never connected. So Genesys holds, or will still create, no more channels of the
// source than the record has items (n), and any it holds beyond the record is older than every
// item (see dropOldestLocked).
//
// While n is below 20, a creation evicts nothing. At 20 or more, a lane connects again a channel
// no lane is using, when there is one. Otherwise a creation may still be safe. Genesys holds G of
// the items, G <= n, so one more creation evicts at most G+1-20 channels, the oldest it holds,
// and since at most n-G items do not exist, those lie among the k = n+1-20 oldest items; a
// placeholder created later only comes after every channel held now, and its eviction counts
// against the same k. Creations sent at the same time may have been carried out in either order,
// and a placeholder may have been carried out up to lateCreationGrace after its failure, so an
// item may be among the k oldest when fewer than k items are certainly older. If no such item is
// in use (they are then
// all placeholders), the source creates, alone, and then forgets the oldest items beyond 20:
// Genesys now holds at most 20, and any forgotten one it still holds is older than every item
// kept, so it is the first to go. Only when such an item is in use does the lane wait, until a
// channel is given back or expires. Without this, placeholders alone (an outage in which every
// creation answers 503) would fill the 20 places and stop the source for 24 hours.
//
// A request that changes a channel's subscriptions may be carried out late too, and Genesys applies
// a channel's requests in the order it carries them out: a removal of the subscriptions that lands
// after another lane has connected the channel again and subscribed its topics leaves that lane
// with a socket that carries heartbeats and no event. So a channel on which such a request may
// still be carried out (see lane.setSubscriptions) is held back once given back: it counts, but is
// not connected again until lateCreationGrace after the lane saw that request end. It is not in
// use, so a creation beyond 20 may evict it; such a creation forsakes every channel it may evict,
// which is never connected again, as one Genesys may no longer have.
//
// The record cannot see channels created with the same OAuth client by another process or
// source; those count against the same 20 and, when newer, bring the source's channels closer to
// eviction.
type account struct {
	createChannel func(context.Context) (*genesys.Channel, error) // the client's CreateChannel
	grace         time.Duration                                   // lateCreationGrace, shorter in tests
	m             *metrics
	log           *slog.Logger

	mu      sync.Mutex
	items   []*held       // in the order their creations were sent
	seq     uint64        // orders the sending and the answer of every creation
	alone   *held         // a creation beyond 20 under way; no other creation starts meanwhile
	changed chan struct{} // closed and replaced when an item is given back, dropped or created
}

// held is one item of the account.
type held struct {
	ch      *genesys.Channel // nil for a creation under way or a placeholder
	expires time.Time        // zero while the creation is under way
	// sent and done order the creation: sent when it was sent, done when its answer (or failure)
	// came, zero while under way. Genesys created a channel it answered for in between, so such
	// an item whose done is below another's sent is certainly the older of the two.
	sent, done uint64
	// sentAt is when the creation was sent, no later than it was; failed, for a placeholder, when
	// its failure was seen, no earlier than it was. Genesys may create a placeholder's channel up
	// to lateCreationGrace after failed, so it is certainly older only than items sent after that.
	sentAt, failed time.Time
	inUse          bool // a lane holds a claim on it, or it is being created for one
	// reuseAt is when Genesys can no longer carry out a request that changed the channel's
	// subscriptions: the channel is not connected again before (see holdBack). forsaken says
	// that a creation beyond 20 may have made Genesys evict it: it is never connected again.
	reuseAt  time.Time
	forsaken bool
}

// pending reports whether the item is a creation under way.
func (h *held) pending() bool { return h.done == 0 }

// placeholder reports whether the item is a creation whose outcome is unknown.
func (h *held) placeholder() bool { return h.ch == nil && !h.pending() }

// claim is a lane's hold on one channel, from acquire until release or drop.
type claim struct {
	a    *account
	h    *held
	once sync.Once
}

func newAccount(client *genesys.Client, m *metrics, log *slog.Logger, grace time.Duration) *account {
	return &account{createChannel: client.CreateChannel, grace: grace, m: m, log: log, changed: make(chan struct{})}
}

// acquire returns a claim on a channel for lane: a new one while the account has room, otherwise
// the unused one with the most life left, otherwise a new one when creating it cannot evict a
// channel in use (see account). It waits while none of these is possible.
func (a *account) acquire(ctx context.Context, lane int) (*claim, error) {
	waited := false
	for {
		t := a.take(ctx, lane, time.Now())
		switch {
		case t.claim != nil:
			return t.claim, nil
		case t.create != nil:
			ch, err := a.createChannel(ctx)
			// The client says when a creation may have gone out, a cancelled one included; one
			// cancelled before it went out created nothing.
			unknown := errors.Is(err, genesys.ErrOutcomeUnknown)
			return a.created(ctx, lane, t.create, ch, err, unknown, time.Now())
		}
		if !waited {
			waited = true
			a.m.limitWait()
			a.log.LogAttrs(ctx, slog.LevelWarn, "notifications: every channel Genesys allows is in use; waiting for one to be free",
				slog.Int("lane", lane), slog.Int("limit", genesys.MaxChannels))
		}
		if err := waitChange(ctx, t.changed, t.next); err != nil {
			return nil, err
		}
	}
}

// taken is what take decided: a claim on a channel connected again, a creation to send, or a
// wait until changed is closed or next has come.
type taken struct {
	claim   *claim
	create  *held
	changed <-chan struct{}
	next    time.Time
}

// take decides, at now, how lane gets a channel.
func (a *account) take(ctx context.Context, lane int, now time.Time) taken {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pruneLocked(now)
	if a.alone == nil && len(a.items) < genesys.MaxChannels {
		return taken{create: a.reserveLocked(now)}
	}
	if h := a.idleLocked(now); h != nil {
		h.inUse = true
		a.m.channel(originReused)
		a.log.LogAttrs(ctx, slog.LevelInfo, "notifications: reusing an unused channel, since creating one would make Genesys evict the oldest",
			slog.Int("lane", lane), slog.String("channel", h.ch.ID), slog.Time("expires", h.expires),
			slog.Int("limit", genesys.MaxChannels))
		return taken{claim: &claim{a: a, h: h}}
	}
	if a.alone == nil && a.evictsNoneInUseLocked() {
		n := len(a.items)
		a.forsakeLocked()
		a.alone = a.reserveLocked(now)
		a.log.LogAttrs(ctx, slog.LevelInfo, "notifications: creating a channel beyond the 20 counted: the oldest are channels whose creation answer was lost or that are held back, and none is in use",
			slog.Int("lane", lane), slog.Int("counted", n), slog.Int("limit", genesys.MaxChannels))
		return taken{create: a.alone}
	}
	// Every place is taken by a channel in use, a creation under way, or placeholders and channels
	// held back younger than a channel in use. Waiting is better than having a channel in use
	// evicted.
	return taken{changed: a.changed, next: a.nextChangeLocked(now)}
}

// waitChange waits until changed is closed, the time next has come (unless it is zero), or ctx
// ends.
func waitChange(ctx context.Context, changed <-chan struct{}, next time.Time) error {
	var expired <-chan time.Time
	if !next.IsZero() {
		t := time.NewTimer(time.Until(next))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-changed:
	case <-expired:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// reserveLocked adds a creation under way, sent at now, newest, in use by the lane it is for.
func (a *account) reserveLocked(now time.Time) *held {
	a.seq++
	h := &held{sent: a.seq, sentAt: now, inUse: true}
	a.items = append(a.items, h)
	return h
}

// created records the outcome of the creation reserved as h, at now: the channel ch, or err. A
// creation that certainly failed gives its place back; one whose outcome is unknown keeps it as a
// placeholder and returns a retryable error, so that the lane tries again after the reconnect
// policy's wait.
func (a *account) created(ctx context.Context, lane int, h *held, ch *genesys.Channel, err error, unknown bool, now time.Time) (*claim, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	h.done = a.seq
	if a.alone == h {
		a.alone = nil
	}
	defer a.notifyLocked()
	switch {
	case err == nil:
		// Genesys gives the expiry on its own clock. One already past (a local clock more than a
		// day ahead, or a bad answer) would have the lane replace the channel at once, again and
		// again, and the record forget a channel in use; so the channel is taken to live its 24
		// hours from now, the latest it can have been created, unless the answer names an expiry
		// within that.
		h.ch, h.expires = ch, now.Add(genesys.ChannelLifetime)
		switch {
		case ch.Expires.After(now) && !ch.Expires.After(h.expires):
			h.expires = ch.Expires
		case ch.Expires.IsZero() || ch.Expires.After(now) && ch.Expires.Sub(h.expires) <= clockSkew:
			// No expiry given, or Genesys' clock a little ahead of ours: nothing to warn about.
		default:
			a.log.LogAttrs(ctx, slog.LevelWarn, "notifications: Genesys gave a channel an expiry already past or more than 24 hours away; is the local clock wrong? Counting 24 hours from now",
				slog.Int("lane", lane), slog.String("channel", ch.ID), slog.Time("answered", ch.Expires), slog.Time("expires", h.expires))
		}
	case unknown:
		// Genesys creates the channel, if at all, by the end of the grace period, so it expires
		// before the placeholder does.
		h.failed, h.inUse = now, false
		h.expires = now.Add(a.grace + genesys.ChannelLifetime)
	default:
		a.items = slices.DeleteFunc(a.items, func(x *held) bool { return x == h })
	}
	a.dropOldestLocked(lane, now)
	switch {
	case err == nil:
		a.m.channel(originCreated)
		return &claim{a: a, h: h}, nil
	case unknown:
		a.m.channel(originUnknown)
		a.log.LogAttrs(ctx, slog.LevelWarn, "notifications: the answer to a channel creation was lost; Genesys may hold the channel, so it is counted against the limit until it would expire",
			slog.Int("lane", lane), slog.Time("counted_until", h.expires), slog.Int("counted", len(a.items)),
			slog.String("error", err.Error()))
		// Not wrapped as a whole: the client marks the error permanent, and the next attempt may
		// well succeed. The wait the server asked for is kept, so that the lane's next attempt,
		// which may create another channel, comes no sooner.
		lost := fmt.Errorf("notifications: creating a channel: %w: %v", genesys.ErrOutcomeUnknown, err)
		if d, ok := retry.RetryAfter(err); ok {
			lost = retry.After(lost, d)
		}
		return nil, lost
	default:
		return nil, err
	}
}

// evictsNoneInUseLocked reports whether creating a channel now cannot make Genesys evict a channel
// in use, with 20 or more items counted (see account). No creation may be under way, so that
// every item's place in the order is settled; an item may be among the k oldest when fewer than k
// items are certainly older than it.
func (a *account) evictsNoneInUseLocked() bool {
	k := len(a.items) + 1 - genesys.MaxChannels
	if k <= 0 {
		return true
	}
	for _, h := range a.items {
		if h.pending() {
			return false
		}
	}
	for _, h := range a.items {
		if h.inUse && a.olderLocked(h) < k {
			return false
		}
	}
	return true
}

// forsakeLocked marks the channels that a creation beyond 20, about to be sent, may make Genesys
// evict (see evictsNoneInUseLocked): none is in use, none can be connected again now (the creation
// would not be sent otherwise), so they are channels held back, which must then never be
// connected again. They still count until they expire or are forgotten as the oldest.
func (a *account) forsakeLocked() {
	k := len(a.items) + 1 - genesys.MaxChannels
	for _, h := range a.items {
		if h.ch != nil && a.olderLocked(h) < k {
			h.forsaken = true
		}
	}
}

// olderLocked returns how many items are certainly older than h.
func (a *account) olderLocked(h *held) int {
	n := 0
	for _, x := range a.items {
		if a.olderThan(x, h) {
			n++
		}
	}
	return n
}

// olderThan reports whether Genesys created x, if at all, before h: x was answered before h was
// sent and, for a placeholder, h was sent after the grace period in which Genesys may still
// create x.
func (a *account) olderThan(x, h *held) bool {
	if x.pending() || x.done >= h.sent {
		return false
	}
	return !x.placeholder() || h.sentAt.After(x.failed.Add(a.grace))
}

// dropOldestLocked forgets, at now, the oldest items beyond the 20 Genesys can hold, as far as
// their order is settled: the longest run of oldest items, at most n-20, that are each certainly
// older than every item after them. Genesys holds at most 20 channels, so the items kept still
// count them all, and any channel forgotten that Genesys still holds is older than every item
// kept, which keeps the rule of evictsNoneInUseLocked true. An item whose order is not settled
// stays, which only over-counts; so does a placeholder whose channel Genesys may still create,
// which would then be the newest. Only placeholders and forsaken channels are ever forgotten so: a
// creation beyond 20 starts only when none of the items it may evict is in use.
func (a *account) dropOldestLocked(lane int, now time.Time) {
	drop := 0
	for j := 1; j <= len(a.items)-genesys.MaxChannels; j++ {
		if a.settledLocked(j, now) {
			drop = j
		}
	}
	if drop == 0 {
		return
	}
	a.items = slices.Delete(a.items, 0, drop)
	a.log.LogAttrs(context.Background(), slog.LevelInfo, "notifications: forgot the oldest channels, whose creation answer was lost or that were held back: Genesys holds at most 20, so they are evicted or never existed",
		slog.Int("lane", lane), slog.Int("forgotten", drop), slog.Int("counted", len(a.items)))
}

// settledLocked reports whether the first j items may be forgotten at now: each is certainly older
// than every later item, and none is a placeholder Genesys may still create.
func (a *account) settledLocked(j int, now time.Time) bool {
	for _, x := range a.items[:j] {
		if x.placeholder() && !now.After(x.failed.Add(a.grace)) {
			return false
		}
		for _, h := range a.items[j:] {
			if !a.olderThan(x, h) {
				return false
			}
		}
	}
	return true
}

// pruneLocked forgets the items that have expired: Genesys no longer counts them.
func (a *account) pruneLocked(now time.Time) {
	a.items = slices.DeleteFunc(a.items, func(h *held) bool { return !h.pending() && !h.expires.After(now) })
}

// idleLocked returns the unused channel that expires last among those that may be connected again
// at now, or nil.
func (a *account) idleLocked(now time.Time) *held {
	var best *held
	for _, h := range a.items {
		if h.ch != nil && !h.inUse && !h.forsaken && !h.reuseAt.After(now) && (best == nil || h.expires.After(best.expires)) {
			best = h
		}
	}
	return best
}

// nextChangeLocked returns when, after now, the first item expires or the first unused channel held
// back may be connected again, or zero without either.
func (a *account) nextChangeLocked(now time.Time) time.Time {
	var next time.Time
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, h := range a.items {
		if !h.pending() {
			earliest(h.expires)
		}
		if h.ch != nil && !h.inUse && !h.forsaken && h.reuseAt.After(now) {
			earliest(h.reuseAt)
		}
	}
	return next
}

func (a *account) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// channel returns the claimed channel.
func (c *claim) channel() *genesys.Channel { return c.h.ch }

// expires returns when the claimed channel expires: its creation and ChannelLifetime later (see
// created), which for a channel connected again is earlier than its socket's connection and
// ChannelLifetime.
func (c *claim) expires() time.Time { return c.h.expires }

// expired reports whether the channel's lifetime is over.
func (c *claim) expired() bool { return !c.h.expires.After(time.Now()) }

// holdBack records that Genesys may carry out a request that changed the channel's subscriptions
// until the grace period after at, when the lane saw the request end: until then, once given
// back, the channel is not connected again (see account).
func (c *claim) holdBack(at time.Time) {
	c.a.mu.Lock()
	defer c.a.mu.Unlock()
	if until := at.Add(c.a.grace); until.After(c.h.reuseAt) {
		c.h.reuseAt = until
	}
}

// release gives the channel back to the account, once its socket is closed, for another lane to
// connect again while it lives. Later calls do nothing.
func (c *claim) release() {
	c.once.Do(func() {
		c.a.mu.Lock()
		defer c.a.mu.Unlock()
		c.h.inUse = false
		c.a.notifyLocked()
	})
}

// drop forgets the channel: Genesys no longer has it. Later calls do nothing.
func (c *claim) drop() {
	c.once.Do(func() {
		c.a.mu.Lock()
		defer c.a.mu.Unlock()
		c.a.items = slices.DeleteFunc(c.a.items, func(h *held) bool { return h == c.h })
		c.a.notifyLocked()
	})
}
