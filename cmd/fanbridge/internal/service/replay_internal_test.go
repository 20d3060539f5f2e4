package service

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/signature"
)

// A replay store keeps every id for the longest tolerance it has served, whichever verifier
// claimed it, and refuses a message older than the point from which ids may have been let go
// under a shorter tolerance: a raise then never reopens a replay, whether the id was already
// dropped, claimed by the old verifier during the reload, or the raise was repeated by a reload
// that failed and was tried again.
func TestReplayStoreRaise(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	newStore := func() *replayStore {
		c, err := signature.NewMemoryReplayCache(100)
		require.NoError(t, err)
		return &replayStore{cache: c, maxTolerance: 2 * time.Second}
	}
	claim := func(v *replayView, id string, ts, now float64) bool {
		t.Helper()
		ok, err := v.Claim(ctx, id, at(now), at(ts).Add(v.tolerance))
		require.NoError(t, err)
		return ok
	}

	t.Run("an id dropped before the raise", func(t *testing.T) {
		r := newStore()
		old := &replayView{store: r, tolerance: 2 * time.Second}
		require.True(t, claim(old, "a", 0, 0))
		require.True(t, claim(old, "b", 3, 3), "at 3, a's id is dropped")
		r.raise(time.Hour, func() time.Time { return at(3) })
		raised := &replayView{store: r, tolerance: time.Hour}
		assert.False(t, claim(raised, "a", 0, 4), "a is older than the floor (1): refused")
		assert.False(t, claim(raised, "b", 3, 4), "b is held, extended")
		assert.True(t, claim(raised, "c", 4, 4), "a new message")
		assert.True(t, claim(raised, "d", 1.5, 4), "a message the old verifier took at 3, never claimed")
		assert.False(t, claim(raised, "e", 1, 4), "a message exactly at the floor may have been let go at 3")
	})
	t.Run("an id claimed by the old verifier after the raise", func(t *testing.T) {
		r := newStore()
		old := &replayView{store: r, tolerance: 2 * time.Second}
		r.raise(time.Hour, func() time.Time { return at(0) })
		require.True(t, claim(old, "e", 0, 0), "in flight during the reload")
		raised := &replayView{store: r, tolerance: time.Hour}
		assert.False(t, claim(raised, "e", 0, 600), "kept for the hour the new verifier takes it")
	})
	t.Run("a raise repeated", func(t *testing.T) {
		r := newStore()
		for range 3 {
			r.raise(time.Hour, func() time.Time { return at(0) })
		}
		raised := &replayView{store: r, tolerance: time.Hour}
		require.True(t, claim(raised, "f", 0, 0))
		assert.False(t, claim(raised, "f", 0, 3599))
		ok, err := r.cache.Claim(ctx, "f", at(3601), at(7200))
		require.NoError(t, err)
		assert.True(t, ok, "held for the hour, not three")
	})
	t.Run("a lower tolerance keeps ids as long", func(t *testing.T) {
		r := newStore()
		r.raise(time.Hour, func() time.Time { return at(0) })
		lowered := &replayView{store: r, tolerance: time.Second}
		require.True(t, claim(lowered, "g", 10, 10))
		r.raise(time.Hour, func() time.Time { return at(20) })
		raised := &replayView{store: r, tolerance: time.Hour}
		assert.False(t, claim(raised, "g", 10, 1800), "kept for the longest tolerance served")
	})
}

// The views a reload builds over one store share its cache's claims in flight, so that a copy of
// a request the old verifier is still handling is retried when the new verifier sees it (see
// signature.ReplayCache).
func TestReplayViewsShareClaimsInFlight(t *testing.T) {
	c, err := signature.NewMemoryReplayCache(100)
	require.NoError(t, err)
	r := &replayStore{cache: c, maxTolerance: time.Minute}
	var old, rebuilt signature.ReplayCache = &replayView{store: r, tolerance: time.Minute}, &replayView{store: r, tolerance: time.Minute}
	type pending interface {
		PendingClaims() *signature.PendingClaims
	}
	po, ok := old.(pending)
	require.True(t, ok, "a view passes its cache's claims in flight on")
	pr, _ := rebuilt.(pending)
	assert.Same(t, c.PendingClaims(), po.PendingClaims())
	assert.Same(t, po.PendingClaims(), pr.PendingClaims())
}
