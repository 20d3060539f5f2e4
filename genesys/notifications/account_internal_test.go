package notifications

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
)

func testAccount(t *testing.T) *account {
	t.Helper()
	m, err := newMetrics(nil)
	require.NoError(t, err)
	return &account{m: m, log: slog.New(slog.DiscardHandler), changed: make(chan struct{}),
		createChannel: func(context.Context) (*genesys.Channel, error) { return nil, errors.New("no creation in this test") }}
}

// Kinds of items in the rule tables.
const (
	ph   = "placeholder"
	idle = "idle"
	used = "in use"
	busy = "under way"
)

// items builds account items of the given kinds, oldest first. The first together items were
// created at the same time, so their order is not settled; every later creation was sent after
// the answer to the one before.
func items(together int, kinds ...string) []*held {
	var out []*held
	seq := uint64(0)
	for i, k := range kinds {
		h := &held{expires: time.Now().Add(time.Hour)}
		if i < together {
			h.sent, h.done = uint64(i+1), uint64(together+i+1)
			seq = uint64(2 * together)
		} else {
			seq++
			h.sent = seq
			seq++
			h.done = seq
		}
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
			a.dropOldestLocked(0)
			assert.Equal(t, want, sents(a.items))
		})
	}
	t.Run("not past a creation under way", func(t *testing.T) {
		a := testAccount(t)
		a.items = items(0, append(append(repeat(2, ph), busy), repeat(20, ph)...)...)
		want := sents(a.items[2:])
		a.dropOldestLocked(0)
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
	outLostBefore // the request failed before Genesys acted, in a way that leaves it unclear
	outRefused    // a definite failure: nothing was created
)

type simCreation struct {
	lane      int
	h         *held
	outcome   int
	processed bool
	id        string
}

// TestAccountNeverEvictsAChannelInUse runs the account against a model of Genesys through random
// interleavings of lanes taking channels, creations reaching Genesys in any order, their answers
// arriving in any order or getting lost, and channels given back. Genesys must never evict a
// channel the account holds (in use or not), a lane must never be handed a channel Genesys no
// longer has, and with nothing in use and nothing under way a lane must never have to wait.
func TestAccountNeverEvictsAChannelInUse(t *testing.T) {
	seeds := 2000
	if testing.Short() {
		seeds = 200
	}
	if *long {
		seeds = 50000
	}
	// Seed 5796 reaches an interleaving in which forgetting items of unsettled order would evict
	// a channel in use.
	var beyond, waits, placeholders int
	for _, seed := range append(seq(seeds), 5796) {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		a := testAccount(t)
		g := &simGenesys{}
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		lanes := 1 + rng.IntN(MaxChannels)
		claims := make([][]*claim, lanes)
		var pending []*simCreation // creations sent and not answered yet
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
		for step := range 400 {
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
			case 1: // Genesys carries out a creation
				if i := pick(false); i >= 0 {
					c := pending[i]
					var evicted string
					c.id, evicted = g.create()
					c.processed = true
					if evicted != "" {
						require.False(t, inUse(evicted), "%s: Genesys evicted channel %s, in use", where, evicted)
						for _, h := range a.items {
							require.False(t, h.ch != nil && h.ch.ID == evicted, "%s: Genesys evicted channel %s, held by the account", where, evicted)
						}
					}
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
				if len(claims[l]) > 0 {
					i := rng.IntN(len(claims[l]))
					claims[l][i].release()
					claims[l] = slices.Delete(claims[l], i, i+1)
				}
			}
			now = now.Add(time.Second)
		}
	}
	t.Logf("creations beyond 20: %d, waits: %d, placeholders: %d", beyond, waits, placeholders)
	assert.Positive(t, beyond, "the simulation never created beyond 20")
	assert.Positive(t, waits, "the simulation never waited")
}
