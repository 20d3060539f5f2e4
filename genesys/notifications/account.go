package notifications

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fanbridge/fanbridge/genesys"
)

// account is the source's record of the channels Genesys holds for it. Genesys keeps a channel
// for 24 hours whatever becomes of its socket (a channel cannot be deleted), counts every one
// against 20 per OAuth client, and evicts the oldest when another is created, even one in use.
// So the source creates a channel only while fewer than 20 of its own are unexpired (or being
// created); beyond that it connects again one that no lane is using, and if every one is in use
// it waits until one is given back or expires. No creation of the source then makes Genesys evict
// one of its channels.
type account struct {
	client *genesys.Client
	m      *metrics
	log    *slog.Logger

	mu       sync.Mutex
	channels []*held       // unexpired channels the source created, oldest first
	creating int           // creations under way, each holding a place among the 20
	changed  chan struct{} // closed and replaced when a channel is given back, dropped or created
}

// held is one channel of the account.
type held struct {
	ch      *genesys.Channel
	expires time.Time
	inUse   bool // a lane holds a claim on it
}

// claim is a lane's hold on one channel, from acquire until release or drop.
type claim struct {
	a    *account
	h    *held
	once sync.Once
}

func newAccount(client *genesys.Client, m *metrics, log *slog.Logger) *account {
	return &account{client: client, m: m, log: log, changed: make(chan struct{})}
}

// acquire returns a claim on a channel for lane: a new one while the account has room, otherwise
// the unused one with the most life left. It waits while every channel is in use.
func (a *account) acquire(ctx context.Context, lane int) (*claim, error) {
	waited := false
	for {
		now := time.Now()
		a.mu.Lock()
		a.pruneLocked(now)
		if len(a.channels)+a.creating < genesys.MaxChannels {
			a.creating++
			a.mu.Unlock()
			return a.create(ctx)
		}
		if h := a.idleLocked(); h != nil {
			h.inUse = true
			a.mu.Unlock()
			a.m.channel(originReused)
			a.log.LogAttrs(ctx, slog.LevelInfo, "notifications: reusing an unused channel, since creating one would make Genesys evict the oldest",
				slog.Int("lane", lane), slog.String("channel", h.ch.ID), slog.Time("expires", h.expires),
				slog.Int("limit", genesys.MaxChannels))
			return &claim{a: a, h: h}, nil
		}
		// Every place is taken by a channel in use or a creation under way. With at most
		// MaxChannels lanes of two channels each this does not happen; should it, waiting is
		// better than having a channel in use evicted.
		changed, next := a.changed, a.nextExpiryLocked()
		a.mu.Unlock()
		if !waited {
			waited = true
			a.m.limitWait()
			a.log.LogAttrs(ctx, slog.LevelWarn, "notifications: every channel Genesys allows is in use; waiting for one to be free",
				slog.Int("lane", lane), slog.Int("limit", genesys.MaxChannels))
		}
		if err := waitChange(ctx, changed, next); err != nil {
			return nil, err
		}
	}
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

// create opens a new channel in the place acquire reserved.
func (a *account) create(ctx context.Context) (*claim, error) {
	ch, err := a.client.CreateChannel(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.creating--
	a.notifyLocked()
	if err != nil {
		return nil, err
	}
	exp := ch.Expires
	if exp.IsZero() {
		exp = time.Now().Add(genesys.ChannelLifetime)
	}
	h := &held{ch: ch, expires: exp, inUse: true}
	a.channels = append(a.channels, h)
	a.m.channel(originCreated)
	return &claim{a: a, h: h}, nil
}

// pruneLocked forgets the channels that have expired: Genesys no longer counts them.
func (a *account) pruneLocked(now time.Time) {
	a.channels = slices.DeleteFunc(a.channels, func(h *held) bool { return !h.expires.After(now) })
}

// idleLocked returns the unused channel that expires last, or nil.
func (a *account) idleLocked() *held {
	var best *held
	for _, h := range a.channels {
		if !h.inUse && (best == nil || h.expires.After(best.expires)) {
			best = h
		}
	}
	return best
}

// nextExpiryLocked returns when the first channel expires, or zero without channels.
func (a *account) nextExpiryLocked() time.Time {
	var next time.Time
	for _, h := range a.channels {
		if next.IsZero() || h.expires.Before(next) {
			next = h.expires
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

// expired reports whether the channel's lifetime is over.
func (c *claim) expired() bool { return !c.h.expires.After(time.Now()) }

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
		c.a.channels = slices.DeleteFunc(c.a.channels, func(h *held) bool { return h == c.h })
		c.a.notifyLocked()
	})
}
