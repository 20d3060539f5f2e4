package genesys_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

// descendingIDs makes every integration's id sort before those made earlier, as random UUIDs
// may: a client must not take the smallest id for the first one made.
func descendingIDs(n int) string { return fmt.Sprintf("6b1f0c9e-0000-4000-9000-%012d", 1_000_000-n) }

// secondClient is another run's client on the fake of f, whose requests carry the User-Agent ua.
func secondClient(t *testing.T, f *fixture, ua string, opts ...genesys.Option) *genesys.Client {
	t.Helper()
	c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
		append([]genesys.Option{genesys.WithBaseURL(f.srv.URL), genesys.WithTokenURL(f.srv.TokenURL()),
			genesys.WithRetryPolicy(fastPolicy), genesys.WithUserAgent(ua),
			genesys.WithLogger(slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// deletes returns the ids of the integrations the logged DELETEs were sent for.
func deletes(srv *genesystest.Server) []string {
	var out []string
	for _, r := range srv.Requests() {
		if r.Method == http.MethodDelete {
			out = append(out, strings.TrimPrefix(r.Path, "/api/v2/integrations/"))
		}
	}
	return out
}

// Two runs with the same spec start at once: both list before either creates, so both create.
// Their creations are held until both have arrived, and then go on in any order.
// They end with one integration, both return it, one of them deleted the one it made, and a third
// run only reads. Whichever order the ids sort in, the outcome is the same.
func TestConcurrentRunsEndWithOneIntegration(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []genesystest.Option
	}{
		{"ids in the order of creation", nil},
		{"ids in the reverse order", []genesystest.Option{genesystest.WithIntegrationIDs(descendingIDs)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts)
			other := secondClient(t, f, "run-b")
			ctx := testContext(t)
			// Hold each creation until both have arrived: both runs listed and found nothing.
			var mu sync.Mutex
			held := 0
			both := make(chan struct{})
			f.srv.SetHook(func(r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != "/api/v2/integrations" {
					return
				}
				mu.Lock()
				held++
				n := held
				if n == 2 {
					close(both)
				}
				mu.Unlock()
				if n <= 2 {
					select {
					case <-both:
					case <-ctx.Done():
					}
				}
			})
			var wg sync.WaitGroup
			results := make([]*genesys.EventBridgeResult, 2)
			errs := make([]error, 2)
			for i, c := range []*genesys.Client{f.client, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = c.EnsureEventBridgeIntegration(ctx, goodSpec())
				}()
			}
			wg.Wait()
			f.srv.SetHook(nil)
			require.NoError(t, errs[0])
			require.NoError(t, errs[1])
			require.Equal(t, 2, f.srv.Count(http.MethodPost, "/api/v2/integrations"), "both runs created one")

			id := results[0].Integration.ID
			assert.Equal(t, id, results[1].Integration.ID, "both runs return the same integration")
			assert.Equal(t, 1, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType))
			assert.True(t, results[0].Created != results[1].Created, "one run's creation is kept: %+v / %+v", results[0], results[1])
			assert.True(t, results[0].DuplicateDeleted != results[1].DuplicateDeleted, "the other run deleted its own")
			for _, res := range results {
				assert.True(t, res.Created || res.DuplicateDeleted)
				assert.True(t, res.Changed())
			}
			dels := deletes(f.srv)
			require.Len(t, dels, 1)
			assert.NotEqual(t, id, dels[0], "the survivor is never deleted")

			got, err := f.client.GetIntegration(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, genesys.StateEnabled, got.IntendedState)
			assert.Equal(t, genesys.ReportedActive, got.ReportedState.Code)

			f.srv.ResetLog()
			third, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
			require.NoError(t, err)
			assert.Equal(t, id, third.Integration.ID)
			assert.False(t, third.Changed(), "%+v", third)
			assert.Empty(t, f.srv.Writes(), "a third run only reads")
		})
	}
}

// A run lists, then its creation is held up while another run lists, creates, finds only its own,
// configures and enables it. The first run's creation, made last, has the smaller id: it sees
// the other run's enabled integration, deletes its own and carries on with that one, which the
// other run has already returned.
func TestARunThatCreatedLastDefersToAnEnabledOne(t *testing.T) {
	f := newFixture(t, []genesystest.Option{genesystest.WithIntegrationIDs(descendingIDs)})
	late := secondClient(t, f, "run-late")
	ctx := testContext(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.srv.SetHook(func(r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v2/integrations" && r.UserAgent() == "run-late" {
			once.Do(func() { close(arrived) })
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	})
	type outcome struct {
		res *genesys.EventBridgeResult
		err error
	}
	lateDone := make(chan outcome, 1)
	go func() {
		res, err := late.EnsureEventBridgeIntegration(ctx, goodSpec())
		lateDone <- outcome{res, err}
	}()
	select {
	case <-arrived:
	case <-ctx.Done():
		t.Fatal("the late run's creation never arrived")
	}

	first, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
	require.NoError(t, err)
	require.True(t, first.Created)
	require.Equal(t, genesys.StateEnabled, first.Integration.IntendedState)

	close(release)
	var got outcome
	select {
	case got = <-lateDone:
	case <-ctx.Done():
		t.Fatal("the late run did not end")
	}
	require.NoError(t, got.err)
	assert.Equal(t, first.Integration.ID, got.res.Integration.ID)
	assert.False(t, got.res.Created)
	assert.True(t, got.res.DuplicateDeleted)
	assert.False(t, got.res.ConfigUpdated, "the config was already as the spec says")
	assert.Equal(t, 1, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType))
	dels := deletes(f.srv)
	require.Len(t, dels, 1)
	assert.Less(t, dels[0], first.Integration.ID, "the late run's own, with the smaller id, is the one deleted")
}

// A run that stopped right after creating its integration leaves it disabled. When it was made
// while this run was creating its own, this run waits for it to be deleted or enabled, then takes
// it for a leftover: it deletes its own and carries on with that one. Several such leftovers
// cannot be told apart: the run deletes its own and fails with ErrAmbiguousName.
func TestALeftoverOfAStoppedRunIsTakenOver(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      []genesystest.Option
		leftovers int
		waits     bool // this run's id is the smallest: it waits the whole settling time
	}{
		{"leftover with the smaller id", nil, 1, false},
		{"leftover with the larger id", []genesystest.Option{genesystest.WithIntegrationIDs(descendingIDs)}, 1, true},
		{"two leftovers", []genesystest.Option{genesystest.WithIntegrationIDs(descendingIDs)}, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := retrytest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			f := newFixture(t, append([]genesystest.Option{genesystest.WithClock(clk.Now)}, tc.opts...), genesys.WithClock(clk))
			ctx := testContext(t)
			var leftovers []string
			var once sync.Once
			f.srv.SetHook(func(r *http.Request) {
				if r.Method == http.MethodPost && r.URL.Path == "/api/v2/integrations" {
					once.Do(func() {
						for range tc.leftovers {
							leftovers = append(leftovers, f.srv.CreateIntegration(genesys.EventBridgeIntegrationType, goodSpec().Name))
						}
					})
				}
			})
			var res *genesys.EventBridgeResult
			err, waited := onFakeClock(t, ctx, clk, func() error {
				var err error
				res, err = f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
				return err
			})
			f.srv.SetHook(nil)
			if tc.waits {
				assert.GreaterOrEqual(t, waited, time.Minute+genesys.DefaultMaxRetryAfter)
			} else {
				assert.Zero(t, waited, "a leftover with a smaller id is taken at once")
			}
			dels := deletes(f.srv)
			require.Len(t, dels, 1, "this run deleted its own, and nothing else")
			assert.NotContains(t, leftovers, dels[0])
			if tc.leftovers > 1 {
				require.ErrorIs(t, err, genesys.ErrAmbiguousName)
				for _, id := range leftovers {
					assert.Contains(t, err.Error(), id)
				}
				assert.Equal(t, 2, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType), "the leftovers stay for the operator")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, leftovers[0], res.Integration.ID)
			assert.False(t, res.Created)
			assert.True(t, res.DuplicateDeleted)
			assert.True(t, res.ConfigUpdated)
			assert.True(t, res.Enabled)
			assert.Equal(t, genesys.ReportedActive, res.Integration.ReportedState.Code)
			assert.Equal(t, 1, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType))
		})
	}
}

// A run that must delete the duplicate it created, and cannot, says which integration to delete.
func TestADuplicateThatCannotBeDeletedIsNamed(t *testing.T) {
	f := newFixture(t, nil)
	ctx := testContext(t)
	var leftover string
	var once sync.Once
	f.srv.SetHook(func(r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v2/integrations" {
			once.Do(func() { leftover = f.srv.CreateIntegration(genesys.EventBridgeIntegrationType, goodSpec().Name) })
		}
	})
	f.srv.Fail(genesystest.Fault{Method: http.MethodDelete, Status: http.StatusForbidden})
	_, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
	require.Error(t, err)
	assert.True(t, genesys.IsForbidden(err))
	assert.Equal(t, 2, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType))
	dels := deletes(f.srv)
	require.Len(t, dels, 1)
	assert.NotEqual(t, leftover, dels[0])
	assert.Contains(t, err.Error(), "deleting integration "+dels[0]+", created by this run")
}

// A run whose creation another run took and enabled (that run deleted its own for it, and may
// have returned it) keeps it, although a third run's creation with a smaller id has appeared
// meanwhile: deleting it would take away the integration another run returned.
func TestRunKeepsItsCreationAnotherRunEnabled(t *testing.T) {
	const mine, later = "6b1f0c9e-0000-4000-9000-000000000005", "6b1f0c9e-0000-4000-9000-000000000001"
	f := newFixture(t, []genesystest.Option{genesystest.WithIntegrationIDs(func(n int) string {
		return map[int]string{1: mine, 2: later}[n]
	})})
	run := secondClient(t, f, "run-a")
	ctx := testContext(t)
	var once sync.Once
	var hookErr error
	f.srv.SetHook(func(r *http.Request) {
		// After this run created its integration, before it lists again: another run enables it,
		// and a third creates one of the same name with a smaller id.
		if r.UserAgent() != "run-a" || r.Method != http.MethodGet || r.URL.Path != "/api/v2/integrations" {
			return
		}
		if !created(f.srv) {
			return
		}
		once.Do(func() {
			_, hookErr = f.client.EnableIntegration(ctx, mine)
			f.srv.CreateIntegration(genesys.EventBridgeIntegrationType, goodSpec().Name)
		})
	})
	res, err := run.EnsureEventBridgeIntegration(ctx, goodSpec())
	f.srv.SetHook(nil)
	require.NoError(t, hookErr)
	require.NoError(t, err)
	assert.Equal(t, mine, res.Integration.ID)
	assert.False(t, res.DuplicateDeleted)
	assert.NotContains(t, deletes(f.srv), mine)
	_, err = f.client.GetIntegration(ctx, mine)
	assert.NoError(t, err, "the integration the other run enabled is still there")
}

// created reports whether a POST of an integration has been logged.
func created(srv *genesystest.Server) bool {
	for _, r := range srv.Requests() {
		if r.Method == http.MethodPost && r.Path == "/api/v2/integrations" {
			return true
		}
	}
	return false
}
