package notifications

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
)

func testAccount(t *testing.T) *account {
	t.Helper()
	m, err := newMetrics(nil)
	require.NoError(t, err)
	return &account{m: m, log: slog.New(slog.DiscardHandler), changed: make(chan struct{}), grace: lateCreationGrace,
		createChannel: func(context.Context) (*genesys.Channel, error) { return nil, errors.New("no creation in this test") }}
}

// Kinds of items in the rule tables.
const (
	ph   = "placeholder"
	idle = "idle"
	used = "in use"
	busy = "under way"
)

// itemsEpoch is when the first of the items built by items was sent.
var itemsEpoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// afterItems is a time when the grace period of every placeholder built by items is over.
func afterItems(n int) time.Time { return itemsEpoch.Add(time.Duration(n+2) * 2 * lateCreationGrace) }

// items builds account items of the given kinds, oldest first. The first together items were
// created at the same time, so their order is not settled; every later creation was sent after
// the answer to the one before, and after the grace period of a placeholder before it.
func items(together int, kinds ...string) []*held {
	var out []*held
	seq := uint64(0)
	for i, k := range kinds {
		h := &held{expires: time.Now().Add(time.Hour)}
		if i < together {
			h.sent, h.done = uint64(i+1), uint64(together+i+1)
			h.sentAt = itemsEpoch
			seq = uint64(2 * together)
		} else {
			seq++
			h.sent = seq
			seq++
			h.done = seq
			h.sentAt = itemsEpoch.Add(time.Duration(i+1) * 2 * lateCreationGrace)
		}
		h.failed = h.sentAt.Add(time.Second)
		switch k {
		case idle, used:
			h.ch = &genesys.Channel{ID: fmt.Sprintf("c%d", i), ConnectURI: "ws://x"}
			h.inUse = k == used
		case busy:
			h.done, h.expires, h.inUse = 0, time.Time{}, true
		}
		out = append(out, h)
	}
	return out
}

// sents identifies items by the order their creations were sent.
func sents(hs []*held) []uint64 {
	out := make([]uint64, len(hs))
	for i, h := range hs {
		out[i] = h.sent
	}
	return out
}

// long runs the long variants of the tests.
var long = flag.Bool("long", false, "run the long variants of the tests")

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func repeat(n int, kind string) []string { return slices.Repeat([]string{kind}, n) }

func TestCreationBeyondTwentyEvictsNoChannelInUse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		together int
		kinds    []string
		safe     bool
	}{
		{"below the limit", 0, append(repeat(18, used), ph), true},
		{"twenty, the oldest a placeholder", 0, append([]string{ph}, repeat(19, used)...), true},
		{"twenty, the oldest in use", 0, append([]string{used}, repeat(19, ph)...), false},
		{"twenty, the oldest idle", 0, append([]string{idle}, repeat(19, ph)...), true},
		{"twenty-two, the third oldest in use", 0, append([]string{ph, ph, used}, repeat(19, ph)...), false},
		{"twenty-two, the fourth oldest in use", 0, append([]string{ph, ph, ph, used}, repeat(18, ph)...), true},
		{"twenty, a channel in use created with the oldest", 2, append([]string{ph, used}, repeat(18, ph)...), false},
		{"twenty, placeholders created with the oldest", 3, append([]string{ph, ph, ph, used}, repeat(16, ph)...), true},
		{"twenty, one creation under way", 0, append(repeat(19, ph), busy), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := testAccount(t)
			a.items = items(tc.together, tc.kinds...)
			assert.Equal(t, tc.safe, a.evictsNoneInUseLocked())
		})
	}
}

// A channel given back while a request that changed its subscriptions may still be carried out is
// held back for the grace period: a lane at the limit connects another unused channel, or waits
// until the hold ends when a creation could evict a channel in use, and then connects it. A
// creation beyond 20 that may evict it forsakes it: it is never connected again.
func TestChannelHeldBackIsConnectedAgainOnlyAfterTheGracePeriod(t *testing.T) {
	ctx := context.Background()
	now := time.Now() // the items expire an hour later, the last built last
	holdBack := func(a *account, i int) *held {
		(&claim{a: a, h: a.items[i]}).holdBack(now)
		return a.items[i]
	}
	t.Run("another unused channel is connected", func(t *testing.T) {
		a := testAccount(t)
		a.items = items(0, append(append([]string{used, idle}, repeat(17, used)...), idle)...)
		holdBack(a, 19)
		tk := a.take(ctx, 0, now)
		require.NotNil(t, tk.claim)
		assert.Same(t, a.items[1], tk.claim.h)
	})
	t.Run("the lane waits for the hold to end", func(t *testing.T) {
		a := testAccount(t)
		a.items = items(0, append(repeat(19, used), idle)...)
		h := holdBack(a, 19)
		tk := a.take(ctx, 0, now.Add(lateCreationGrace-time.Second))
		require.Nil(t, tk.claim)
		require.Nil(t, tk.create)
		assert.Equal(t, now.Add(lateCreationGrace), tk.next, "the wait ends with the hold")
		tk = a.take(ctx, 0, tk.next)
		require.NotNil(t, tk.claim)
		assert.Same(t, h, tk.claim.h)
	})
	t.Run("a creation beyond 20 forsakes it", func(t *testing.T) {
		a := testAccount(t)
		a.items = items(0, append([]string{idle}, repeat(19, used)...)...)
		h := holdBack(a, 0)
		tk := a.take(ctx, 0, now)
		require.NotNil(t, tk.create, "the channel held back is not in use: Genesys may evict it")
		assert.True(t, h.forsaken)
		assert.Nil(t, a.idleLocked(now.Add(lateCreationGrace)), "a channel Genesys may have evicted is connected again")
	})
}

// At 20, a lane connects again the unused channel that expires last, wherever it stands in the
// order of creation: it has the most life left before the lane must replace it.
func TestLaneAtTheLimitConnectsTheUnusedChannelThatExpiresLast(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name   string
		expire [2]time.Duration // of the two unused channels, the older first
		want   int              // the index of the one connected
	}{
		{"the older expires last", [2]time.Duration{2 * time.Hour, time.Hour}, 18},
		{"the newer expires last", [2]time.Duration{time.Hour, 2 * time.Hour}, 19},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := testAccount(t)
			a.items = items(0, append(repeat(18, used), idle, idle)...)
			a.items[18].expires = now.Add(tc.expire[0])
			a.items[19].expires = now.Add(tc.expire[1])
			tk := a.take(context.Background(), 0, now)
			require.NotNil(t, tk.claim)
			assert.Same(t, a.items[tc.want], tk.claim.h)
		})
	}
}

func TestOldestItemsBeyondTwentyAreForgottenOnlyInSettledOrder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		together int
		n        int
		dropped  int
	}{
		{"twenty", 0, 20, 0},
		{"twenty-one", 0, 21, 1},
		{"twenty-five", 0, 25, 5},
		{"twenty-one, the two oldest created together", 2, 21, 0},
		{"twenty-two, the two oldest created together", 2, 22, 2},
		{"twenty-two, the three oldest created together", 3, 22, 0},
		{"twenty-three, the three oldest created together", 3, 23, 3},
		{"twenty-five, the three oldest created together", 3, 25, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := testAccount(t)
			a.items = items(tc.together, repeat(tc.n, ph)...)
			want := sents(a.items[tc.dropped:])
			a.dropOldestLocked(0, afterItems(tc.n))
			assert.Equal(t, want, sents(a.items))
		})
	}
	t.Run("not a placeholder Genesys may still create", func(t *testing.T) {
		a := testAccount(t)
		a.items = items(0, repeat(21, ph)...)
		want := sents(a.items)
		a.dropOldestLocked(0, a.items[0].failed.Add(lateCreationGrace))
		assert.Equal(t, want, sents(a.items))
		a.dropOldestLocked(0, a.items[0].failed.Add(lateCreationGrace+time.Second))
		assert.Equal(t, want[1:], sents(a.items))
	})
	t.Run("not past a creation under way", func(t *testing.T) {
		a := testAccount(t)
		a.items = items(0, append(append(repeat(2, ph), busy), repeat(20, ph)...)...)
		want := sents(a.items[2:])
		a.dropOldestLocked(0, afterItems(23))
		assert.Equal(t, want, sents(a.items))
	})
}

// simGenesys keeps channels as Genesys does: in the order of their creation, at most 20, the 21st
// evicting the oldest.
type simGenesys struct {
	live    []string
	created int
}

func (g *simGenesys) create() (id, evicted string) {
	g.created++
	id = fmt.Sprintf("ch%d", g.created)
	g.live = append(g.live, id)
	if len(g.live) > genesys.MaxChannels {
		evicted, g.live = g.live[0], g.live[1:]
	}
	return id, evicted
}

// Outcomes of a simulated creation.
const (
	outSuccess    = iota
	outLostAfter  // Genesys created the channel, the answer was lost
	outLostBefore // the request failed before Genesys acted, in a way that leaves it unclear; it
	// may still act on it after the failure was seen, within the grace period
	outRefused // a definite failure: nothing was created
)

type simCreation struct {
	lane      int
	h         *held
	outcome   int
	processed bool
	id        string
	latest    time.Time // for a lost creation Genesys has not acted on: the last moment it may
}

// TestAccountNeverEvictsAChannelInUse runs the account against a model of Genesys through random
// interleavings of lanes taking channels, creations reaching Genesys in any order, their answers
// arriving in any order or getting lost, lost creations carried out after their failure was seen
// (within the grace period), time passing at different paces, and channels given back, some held
// back because a subscription request may still be carried out. Genesys must never evict a channel
// the account holds (in use or not) unless it was forsaken, a lane must never be handed a channel
// Genesys no longer has or one still held back, and with nothing in use and nothing under way a
// lane must never have to wait.
func TestAccountNeverEvictsAChannelInUse(t *testing.T) {
	seeds := 2000
	if testing.Short() {
		seeds = 200
	}
	if *long {
		seeds = 50000
	}
	// Seed 6819 reaches an interleaving in which forgetting items of unsettled order would evict
	// a channel in use.
	steps := 400
	if *long {
		steps = 1000
	}
	var beyond, waits, placeholders, tardies, held int
	for _, seed := range append(seq(seeds), 6819) {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		// Drawn apart, so that the weather of the other draws stays as it was for each seed.
		rng2 := rand.New(rand.NewPCG(uint64(seed), 11))
		rng3 := rand.New(rand.NewPCG(uint64(seed), 13))
		a := testAccount(t)
		g := &simGenesys{}
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		lanes := 1 + rng.IntN(MaxChannels)
		claims := make([][]*claim, lanes)
		var pending []*simCreation // creations sent and not answered yet
		var late []*simCreation    // creations answered as lost that Genesys may still carry out
		waiting := func(l int) bool {
			return slices.ContainsFunc(pending, func(c *simCreation) bool { return c.lane == l })
		}
		// pick returns the index of a random pending creation whose processed is p, or -1.
		pick := func(p bool) int {
			var is []int
			for i, c := range pending {
				if c.processed == p {
					is = append(is, i)
				}
			}
			if len(is) == 0 {
				return -1
			}
			return is[rng.IntN(len(is))]
		}
		// Each seed has its own weather: how often creations fail and how, and how often lanes
		// give channels back.
		var (
			lost    = rng.Float64()
			after   = []float64{0, 0.5, 0.9, 1}[rng.IntN(4)] // of the lost answers, those Genesys acted on
			refused = []float64{0, 0.2}[rng.IntN(2)]
			release = []int{1, 3, 10}[rng.IntN(3)]
			// Of the lost creations Genesys had not acted on, those it may act on later, and how
			// much time passes between steps.
			tardy = []float64{0, 0.5, 1}[rng2.IntN(3)]
			tick  = []time.Duration{time.Second, 10 * time.Second, time.Minute}[rng2.IntN(3)]
			// Lanes that keep their channels for long let placeholders pile up around them.
			keep = []float64{0, 0.9, 0.99}[rng2.IntN(3)]
			// Of the channels given back, those whose last subscription request may still be
			// carried out (see holdBack).
			unsettled = []float64{0, 0.5, 1}[rng3.IntN(3)]
		)
		fail := func() int {
			switch {
			case rng.Float64() >= lost:
				return outSuccess
			case rng.Float64() < refused:
				return outRefused
			case rng.Float64() < after:
				return outLostAfter
			default:
				return outLostBefore
			}
		}
		inUse := func(id string) bool {
			for _, cs := range claims {
				for _, c := range cs {
					if c.h.ch != nil && c.h.ch.ID == id {
						return true
					}
				}
			}
			return false
		}
		carryOut := func(where string, c *simCreation) {
			if c.processed {
				tardies++
			}
			var evicted string
			c.id, evicted = g.create()
			c.processed = true
			if evicted != "" {
				require.False(t, inUse(evicted), "%s: Genesys evicted channel %s, in use", where, evicted)
				for _, h := range a.items {
					require.False(t, h.ch != nil && h.ch.ID == evicted && !h.forsaken, "%s: Genesys evicted channel %s, held by the account", where, evicted)
				}
			}
		}
		for step := range steps {
			where := fmt.Sprintf("seed %d step %d", seed, step)
			switch rng.IntN(3 + release) {
			case 0: // a lane takes a channel
				l := rng.IntN(lanes)
				if waiting(l) || len(claims[l]) == 2 {
					continue
				}
				quiet := len(pending) == 0
				for _, cs := range claims {
					quiet = quiet && len(cs) == 0
				}
				tk := a.take(context.Background(), l, now)
				switch {
				case tk.claim != nil:
					require.Contains(t, g.live, tk.claim.h.ch.ID, "%s: reused a channel Genesys no longer has", where)
					require.False(t, tk.claim.h.reuseAt.After(now), "%s: reused a channel held back until %v", where, tk.claim.h.reuseAt)
					claims[l] = append(claims[l], tk.claim)
				case tk.create != nil:
					if a.alone == tk.create {
						beyond++
					}
					c := &simCreation{lane: l, h: tk.create, outcome: fail()}
					c.processed = c.outcome == outLostBefore || c.outcome == outRefused
					pending = append(pending, c)
				default:
					waits++
					require.False(t, quiet, "%s: a lane waits with nothing in use and nothing under way: %d items", where, len(a.items))
				}
			case 1: // Genesys carries out a creation, one sent or one answered as lost
				if i := pick(false); i >= 0 && (len(late) == 0 || rng2.IntN(2) == 0) {
					carryOut(where, pending[i])
				} else if len(late) > 0 {
					j := rng2.IntN(len(late))
					carryOut(where, late[j])
					late = slices.Delete(late, j, j+1)
				}
			case 2: // an answer arrives
				if i := pick(true); i >= 0 {
					c, l := pending[i], pending[i].lane
					pending = slices.Delete(pending, i, i+1)
					var (
						ch  *genesys.Channel
						err error
					)
					switch c.outcome {
					case outSuccess:
						ch = &genesys.Channel{ID: c.id, ConnectURI: "ws://x", Expires: now.Add(genesys.ChannelLifetime)}
					case outLostAfter, outLostBefore:
						err = fmt.Errorf("%w: 503", genesys.ErrOutcomeUnknown)
						placeholders++
						if c.outcome == outLostBefore && rng2.Float64() < tardy {
							c.latest = now.Add(lateCreationGrace)
							late = append(late, c)
						}
					default:
						err = errors.New("400")
					}
					cl, err := a.created(context.Background(), l, c.h, ch, err, c.outcome == outLostAfter || c.outcome == outLostBefore, now)
					if c.outcome == outSuccess {
						require.NoError(t, err)
						claims[l] = append(claims[l], cl)
					} else {
						require.Error(t, err)
					}
				}
			default: // a lane gives a channel back
				l := rng.IntN(lanes)
				if len(claims[l]) > 0 && rng2.Float64() >= keep {
					i := rng.IntN(len(claims[l]))
					if rng3.Float64() < unsettled {
						claims[l][i].holdBack(now)
						held++
					}
					claims[l][i].release()
					claims[l] = slices.Delete(claims[l], i, i+1)
				}
			}
			// Genesys acts on a lost creation within the grace period, or never; acting at the last
			// moment puts it after as many creations as it can be.
			late = slices.DeleteFunc(late, func(c *simCreation) bool {
				if !now.Add(tick).After(c.latest) {
					return false
				}
				if rng2.IntN(2) == 0 {
					carryOut(fmt.Sprintf("seed %d step %d", seed, step), c)
				}
				return true
			})
			now = now.Add(tick)
		}
	}
	t.Logf("creations beyond 20: %d, waits: %d, placeholders: %d, carried out after their failure: %d, held back: %d", beyond, waits, placeholders, tardies, held)
	assert.Positive(t, beyond, "the simulation never created beyond 20")
	assert.Positive(t, waits, "the simulation never waited")
	assert.Positive(t, held, "the simulation never held a channel back")
}

// A creation whose answer is lost because the client gave up (its per-attempt timeout, a 504 from
// a gateway) may be carried out by Genesys after the failure was seen. Such a placeholder is not
// older than channels created soon after the failure, so it cannot make room for a creation beyond
// 20 that would evict one of them; once the creations were sent after its grace period, it can.
func TestLostCreationCarriedOutLateEvictsNoChannelInUse(t *testing.T) {
	for _, tc := range []struct {
		name string
		gap  time.Duration // between the failure of the first creation and the sending of the second
		safe bool
	}{
		{"channel created within the grace period", time.Second, false},
		{"channel created after the grace period", 6 * time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			a := testAccount(t)
			g := &simGenesys{}
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			lost := fmt.Errorf("%w: 504 from a gateway", genesys.ErrOutcomeUnknown)

			// The first creation times out; Genesys has not carried it out yet.
			first := a.take(ctx, 0, now).create
			require.NotNil(t, first)
			_, err := a.created(ctx, 0, first, nil, lost, true, now)
			require.ErrorIs(t, err, genesys.ErrOutcomeUnknown)

			// The next one succeeds, and lane 0 uses its channel. Genesys carries out the first
			// creation at the last moment it can: the end of the grace period, before the second
			// when that was sent later, and else after it.
			now = now.Add(tc.gap)
			if tc.safe {
				g.create()
			}
			second := a.take(ctx, 0, now).create
			require.NotNil(t, second)
			id, _ := g.create()
			cl, err := a.created(ctx, 0, second, &genesys.Channel{ID: id, ConnectURI: "ws://x", Expires: now.Add(genesys.ChannelLifetime)}, nil, false, now)
			require.NoError(t, err)
			if !tc.safe {
				_, evicted := g.create()
				require.Empty(t, evicted)
			}

			// Eighteen more creations are carried out and their answers lost: 20 places are counted.
			for i := range 18 {
				now = now.Add(time.Second)
				h := a.take(ctx, 1, now).create
				require.NotNil(t, h, "creation %d", i)
				g.create()
				_, err := a.created(ctx, 1, h, nil, lost, true, now)
				require.Error(t, err)
			}

			// A lane needs a channel.
			now = now.Add(time.Second)
			tk := a.take(ctx, 1, now)
			if tk.create != nil {
				_, evicted := g.create()
				require.NotEqual(t, cl.channel().ID, evicted, "Genesys evicted channel %s, in use", evicted)
			}
			if tc.safe {
				require.NotNil(t, tk.create, "the lane waits although the first creation is older than every channel")
			} else {
				require.Nil(t, tk.claim)
				require.Nil(t, tk.create)
			}
		})
	}
}

// A creation whose answer was lost counts until the channel Genesys may create for it would expire:
// Genesys may carry it out as late as the end of the grace period, and the channel then lives 24
// hours from there.
func TestLostCreationCountsUntilALateChannelWouldExpire(t *testing.T) {
	ctx := context.Background()
	a := testAccount(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := a.take(ctx, 0, now).create
	require.NotNil(t, h)
	_, err := a.created(ctx, 0, h, nil, fmt.Errorf("%w: 504 from a gateway", genesys.ErrOutcomeUnknown), true, now)
	require.ErrorIs(t, err, genesys.ErrOutcomeUnknown)
	lateExpiry := now.Add(lateCreationGrace + genesys.ChannelLifetime)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pruneLocked(lateExpiry.Add(-time.Second))
	assert.Equal(t, []*held{h}, a.items, "forgotten while the channel created late still counts")
	a.pruneLocked(lateExpiry)
	assert.Empty(t, a.items, "counted after the channel created late has expired")
}

// A creation cut short before it went out (its dial still under way when the reconnect policy's
// AttemptTimeout ends it, say) created nothing: it is not counted against the 20, and no lost
// creation is reported. One cut short once it went out may still be carried out by Genesys, and
// counts for 24 hours and the grace period.
func TestCancelledCreationCountsOnlyOnceItWentOut(t *testing.T) {
	const blackhole = "api.blackhole.test"
	for _, tc := range []struct {
		name string
		lost bool
	}{
		{"cancelled while dialling", false},
		{"cancelled once it went out", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := genesystest.NewServer()
			t.Cleanup(srv.Close)
			tctx, stop := context.WithTimeout(context.Background(), 20*time.Second)
			defer stop()
			ctx, cancel := context.WithCancel(tctx)
			defer cancel()
			base := srv.URL
			tr := http.DefaultTransport.(*http.Transport).Clone()
			t.Cleanup(tr.CloseIdleConnections)
			if tc.lost {
				srv.SetHook(func(r *http.Request) {
					if r.Method != http.MethodPost || r.URL.Path != "/api/v2/notifications/channels" {
						return
					}
					body, _ := io.ReadAll(r.Body) // the whole request is in
					r.Body = io.NopCloser(bytes.NewReader(body))
					cancel()
					select {
					case <-r.Context().Done(): // the client hung up
					case <-tctx.Done():
					}
				})
			} else {
				// An address whose dial never completes.
				base = "https://" + blackhole
				dial := tr.DialContext
				tr.DialContext = func(dctx context.Context, network, addr string) (net.Conn, error) {
					if addr != blackhole+":443" {
						return dial(dctx, network, addr)
					}
					cancel()
					select {
					case <-dctx.Done():
					case <-tctx.Done():
					}
					return nil, dctx.Err()
				}
			}
			client, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
				genesys.WithHTTPClient(&http.Client{Transport: tr}), genesys.WithBaseURL(base), genesys.WithTokenURL(srv.TokenURL()))
			require.NoError(t, err)
			m, err := newMetrics(nil)
			require.NoError(t, err)
			a := newAccount(client, m, slog.New(slog.DiscardHandler), lateCreationGrace)

			_, err = a.acquire(ctx, 0)
			require.Error(t, err)
			if !tc.lost {
				assert.ErrorIs(t, err, context.Canceled)
				assert.NotErrorIs(t, err, genesys.ErrOutcomeUnknown)
				assert.Empty(t, a.items, "a creation that never went out is counted")
				return
			}
			assert.ErrorIs(t, err, genesys.ErrOutcomeUnknown)
			require.Len(t, a.items, 1)
			assert.True(t, a.items[0].placeholder())
		})
	}
}
