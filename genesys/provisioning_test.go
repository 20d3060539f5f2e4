package genesys_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

func goodSpec() genesys.EventBridgeSpec {
	return genesys.EventBridgeSpec{
		Name:              "fanbridge-events",
		AWSAccountID:      "123456789012",
		AWSRegion:         "eu-west-1",
		EventSourceSuffix: "contact-centre.prod",
		Topics: []string{
			"v2.detail.events.conversation.{id}.customer.end",
			"v2.users.{id}.presence",
		},
		Notes: "managed by fanbridge",
	}
}

func TestEnsureEventBridgeIntegrationIsIdempotent(t *testing.T) {
	f := newFixture(t, nil)
	ctx := testContext(t)

	res, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
	require.NoError(t, err)
	assert.True(t, res.Created)
	assert.True(t, res.ConfigUpdated)
	assert.True(t, res.Enabled)
	assert.False(t, res.Replaced)
	assert.Equal(t, genesystest.DefaultOrganizationID, res.OrganizationID)
	assert.Equal(t, "aws.partner/genesys.com/cloud/"+genesystest.DefaultOrganizationID+"/contact-centre.prod", res.PartnerEventSource)
	assert.Equal(t, "fanbridge-events", res.Integration.Name)
	assert.Equal(t, genesys.StateEnabled, res.Integration.IntendedState)
	require.NotNil(t, res.Integration.ReportedState)
	assert.Equal(t, genesys.ReportedActive, res.Integration.ReportedState.Code)
	writes := f.srv.Writes()
	require.Len(t, writes, 3, "create, config, enable: %+v", writes)
	assert.Equal(t, http.MethodPost, writes[0].Method)
	assert.Equal(t, http.MethodPut, writes[1].Method)
	assert.Equal(t, http.MethodPatch, writes[2].Method)

	cfg, err := f.client.GetIntegrationConfig(ctx, res.Integration.ID)
	require.NoError(t, err)
	assert.JSONEq(t, `"123456789012"`, string(cfg.Properties["awsAccountId"]))
	assert.JSONEq(t, `"eu-west-1"`, string(cfg.Properties["awsAccountRegion"]))
	assert.JSONEq(t, `"contact-centre.prod"`, string(cfg.Properties["eventSourceSuffix"]))
	assert.JSONEq(t, `["v2.detail.events.conversation.{id}.customer.end","v2.users.{id}.presence"]`, string(cfg.Properties["eventFilter"]))
	assert.Equal(t, "managed by fanbridge", cfg.Notes)

	f.srv.ResetLog()
	spec := goodSpec()
	spec.Topics = []string{spec.Topics[1], spec.Topics[0]} // order carries no meaning
	again, err := f.client.EnsureEventBridgeIntegration(ctx, spec)
	require.NoError(t, err)
	assert.False(t, again.Changed(), "%+v", again)
	assert.Empty(t, f.srv.Writes(), "the second run only reads")
	assert.Equal(t, res.Integration.ID, again.Integration.ID)
	assert.Equal(t, res.PartnerEventSource, again.PartnerEventSource)
	assert.Equal(t, 1, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType))
	require.NotNil(t, again.Integration.ReportedState)
	assert.Equal(t, genesys.ReportedActive, again.Integration.ReportedState.Code)
}

func TestEnsureSurvivesVersionConflict(t *testing.T) {
	f := newFixture(t, nil)
	ctx := testContext(t)
	id := f.srv.SeedEventBridgeIntegration("fanbridge-events", "123456789012", "eu-west-1", "contact-centre.prod",
		[]string{"v2.users.{id}.presence"})

	// Another writer changes the config between our read of the version and our write: the hook
	// runs just before the server handles our PUT.
	bumped := false
	f.srv.SetHook(func(r *http.Request) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/config/current") && !bumped {
			bumped = true
			f.srv.BumpConfigVersion(id)
		}
	})
	res, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
	require.NoError(t, err)
	assert.True(t, res.ConfigUpdated)
	assert.False(t, res.Created)
	assert.False(t, res.Enabled, "it was enabled already")

	var puts []int
	for _, r := range f.srv.Requests() {
		if r.Method == http.MethodPut {
			puts = append(puts, r.Status)
		}
	}
	assert.Equal(t, []int{http.StatusConflict, http.StatusOK}, puts)
	assert.Equal(t, 2, f.srv.Count(http.MethodGet, "/api/v2/integrations/"+id+"/config/current"), "the version was read again")

	t.Run("the same config stored by another writer is not this run's update", func(t *testing.T) {
		f := newFixture(t, nil)
		other, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
			genesys.WithBaseURL(f.srv.URL), genesys.WithTokenURL(f.srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy))
		require.NoError(t, err)
		f.srv.SeedEventBridgeIntegration("fanbridge-events", "123456789012", "eu-west-1", "contact-centre.prod",
			[]string{"v2.users.{id}.presence"})
		// Just before our PUT, another run stores the very config we are about to write: ours
		// meets a version conflict, and the config read again already matches.
		var started atomic.Bool
		otherErr := make(chan error, 1)
		f.srv.SetHook(func(r *http.Request) {
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/config/current") && started.CompareAndSwap(false, true) {
				_, err := other.EnsureEventBridgeIntegration(ctx, goodSpec())
				otherErr <- err
			}
		})
		res, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
		require.NoError(t, err)
		require.NoError(t, <-otherErr)
		assert.False(t, res.ConfigUpdated, "this run wrote nothing")
		var puts []int
		for _, r := range f.srv.Requests() {
			if r.Method == http.MethodPut {
				puts = append(puts, r.Status)
			}
		}
		assert.Equal(t, []int{http.StatusConflict, http.StatusOK}, puts, "ours (in the log as it arrived), refused; the other run's, stored")
	})
	t.Run("conflicts are bounded", func(t *testing.T) {
		f.srv.SetHook(func(r *http.Request) {
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/config/current") {
				f.srv.BumpConfigVersion(id)
			}
		})
		spec := goodSpec()
		spec.Notes = "changed again"
		_, err := f.client.EnsureEventBridgeIntegration(ctx, spec)
		require.Error(t, err)
		assert.True(t, genesys.IsConflict(err))
	})
}

func TestEnsureValidatesBeforeAnyWrite(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(*genesys.EventBridgeSpec)
		target    error
		contains  []string
		noRequest bool // the spec alone is wrong: not even a read happens
	}{
		{"short account id", func(s *genesys.EventBridgeSpec) { s.AWSAccountID = "12345678901" }, genesys.ErrInvalidSpec, []string{"AWSAccountID", "12345678901"}, true},
		{"13-digit account id", func(s *genesys.EventBridgeSpec) { s.AWSAccountID = "1234567890123" }, genesys.ErrInvalidSpec, []string{"AWSAccountID", "1234567890123"}, true},
		{"letters in account id", func(s *genesys.EventBridgeSpec) { s.AWSAccountID = "12345678901x" }, genesys.ErrInvalidSpec, []string{"AWSAccountID"}, true},
		{"bad region", func(s *genesys.EventBridgeSpec) { s.AWSRegion = "Mars" }, genesys.ErrInvalidSpec, []string{"AWSRegion", "Mars"}, true},
		{"suffix with slash", func(s *genesys.EventBridgeSpec) { s.EventSourceSuffix = "a/b" }, genesys.ErrInvalidSpec, []string{"EventSourceSuffix"}, true},
		{"suffix too long", func(s *genesys.EventBridgeSpec) { s.EventSourceSuffix = strings.Repeat("x", 65) }, genesys.ErrInvalidSpec, []string{"EventSourceSuffix"}, true},
		{"empty name", func(s *genesys.EventBridgeSpec) { s.Name = "" }, genesys.ErrInvalidSpec, []string{"Name"}, true},
		{"name with a C1 control", func(s *genesys.EventBridgeSpec) { s.Name = "fanbridge\u009bevents" }, genesys.ErrInvalidSpec, []string{"Name"}, true},
		{"name with a bidirectional override", func(s *genesys.EventBridgeSpec) { s.Name = "fanbridge-\u202estneve" }, genesys.ErrInvalidSpec, []string{"Name"}, true},
		{"no topics", func(s *genesys.EventBridgeSpec) { s.Topics = nil }, genesys.ErrInvalidSpec, []string{"Topics"}, true},
		{"duplicate topic", func(s *genesys.EventBridgeSpec) { s.Topics = append(s.Topics, s.Topics[0]) }, genesys.ErrInvalidSpec, []string{"Topics[2]", "twice"}, true},
		{"several fields", func(s *genesys.EventBridgeSpec) { s.AWSAccountID, s.AWSRegion = "", "" }, genesys.ErrInvalidSpec, []string{"AWSAccountID", "AWSRegion"}, true},
		{"organization id not a UUID", func(s *genesys.EventBridgeSpec) { s.OrganizationID = "my-org" }, genesys.ErrInvalidSpec, []string{"OrganizationID", `"my-org"`, "want a UUID"}, true},
		{"organization id a digit short", func(s *genesys.EventBridgeSpec) { s.OrganizationID = "0f9e8d7c-6b5a-4321-8765-43210fedcba" }, genesys.ErrInvalidSpec, []string{"OrganizationID", "want a UUID"}, true},
		{"organization id without dashes", func(s *genesys.EventBridgeSpec) { s.OrganizationID = "0f9e8d7c6b5a4321876543210fedcba9" }, genesys.ErrInvalidSpec, []string{"OrganizationID", "want a UUID"}, true},
		{"unknown topic", func(s *genesys.EventBridgeSpec) { s.Topics = append(s.Topics, "v2.users.{id}.mood") }, genesys.ErrUnknownTopic, []string{"v2.users.{id}.mood"}, false},
		{"concrete id instead of template", func(s *genesys.EventBridgeSpec) {
			s.Topics = []string{"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"}
		}, genesys.ErrUnknownTopic, []string{`did you mean "v2.users.{id}.presence"`}, false},
		{"websocket-only topic", func(s *genesys.EventBridgeSpec) { s.Topics = []string{"v2.system.socket_closing"} }, genesys.ErrUnknownTopic, []string{"not available on EventBridge"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			spec := goodSpec()
			tt.mutate(&spec)
			res, err := f.client.EnsureEventBridgeIntegration(testContext(t), spec)
			require.Error(t, err)
			assert.Nil(t, res)
			assert.ErrorIs(t, err, tt.target)
			for _, c := range tt.contains {
				assert.Contains(t, err.Error(), c)
			}
			assert.Empty(t, f.srv.Writes(), "nothing may be written")
			if tt.noRequest {
				assert.Empty(t, f.srv.Requests(), "a bad spec is refused before any request")
			}
		})
	}
	t.Run("unknown topics are all named", func(t *testing.T) {
		f := newFixture(t, nil)
		spec := goodSpec()
		spec.Topics = []string{"v2.users.{id}.mood", "v2.users.{id}.presence", "v2.queues.{id}.weather"}
		_, err := f.client.EnsureEventBridgeIntegration(testContext(t), spec)
		var ute *genesys.UnknownTopicsError
		require.ErrorAs(t, err, &ute)
		assert.Equal(t, []string{"v2.users.{id}.mood", "v2.queues.{id}.weather"}, ute.Unknown)
	})
}

func TestEnsureRefusesToMoveTheEventSource(t *testing.T) {
	f := newFixture(t, nil)
	ctx := testContext(t)
	old := f.srv.SeedEventBridgeIntegration("fanbridge-events", "999999999999", "eu-west-1", "contact-centre.prod",
		[]string{"v2.users.{id}.presence"})

	_, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
	require.Error(t, err)
	assert.ErrorIs(t, err, genesys.ErrImmutableConfig)
	var ice *genesys.ImmutableChangeError
	require.ErrorAs(t, err, &ice)
	assert.Equal(t, old, ice.IntegrationID)
	assert.Equal(t, []genesys.FieldChange{{Field: "awsAccountId", Current: "999999999999", Desired: "123456789012"}}, ice.Changes)
	// The hint names the option for library callers and the flag for the command's users.
	assert.ErrorContains(t, err, "set Replace (the provision command's -replace)")
	assert.Empty(t, f.srv.Writes())

	t.Run("Replace re-creates it", func(t *testing.T) {
		spec := goodSpec()
		spec.Replace = true
		res, err := f.client.EnsureEventBridgeIntegration(ctx, spec)
		require.NoError(t, err)
		assert.True(t, res.Replaced)
		assert.NotEqual(t, old, res.Integration.ID)
		assert.Equal(t, 1, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType))
		_, err = f.client.GetIntegration(ctx, old)
		assert.True(t, genesys.IsNotFound(err))
		assert.Equal(t, genesys.StateEnabled, res.Integration.IntendedState)
	})
}

func TestEnsureRecoversALostCreateAnswer(t *testing.T) {
	f := newFixture(t, nil)
	// The gateway times out after Genesys created the integration: the client sees a 504.
	f.srv.Fail(genesystest.Fault{Method: http.MethodPost, Path: "/api/v2/integrations", Status: 504, Processed: true})
	res, err := f.client.EnsureEventBridgeIntegration(testContext(t), goodSpec())
	require.NoError(t, err)
	assert.Equal(t, 1, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType), "no duplicate integration")
	assert.Equal(t, 1, f.srv.Count(http.MethodPost, "/api/v2/integrations"), "the POST is not replayed")
	assert.Equal(t, "fanbridge-events", res.Integration.Name)

	t.Run("a refused create is tried again once Genesys cannot carry it out any more", func(t *testing.T) {
		clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
		f := newFixture(t, nil, genesys.WithClock(clk))
		// Not processed: the integration does not exist after the failure.
		f.srv.Fail(genesystest.Fault{Method: http.MethodPost, Path: "/api/v2/integrations", Status: 503})
		ctx := testContext(t)
		err, took := onFakeClock(t, ctx, clk, func() error {
			_, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
			return err
		})
		require.NoError(t, err)
		assert.Equal(t, 1, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType))
		assert.Equal(t, 2, f.srv.Count(http.MethodPost, "/api/v2/integrations"))
		assert.GreaterOrEqual(t, took, 5*time.Minute, "created again before the 5 minutes in which Genesys may still carry the first out")
		assert.Less(t, took, 6*time.Minute)
		lists := f.srv.Count(http.MethodGet, "/api/v2/integrations")
		assert.LessOrEqual(t, lists, 20, "looked up about every 30s meanwhile")
	})
	t.Run("the 5 minutes run from the lost creation, not from the 429s before it", func(t *testing.T) {
		// The client waits out two 429s (the Retry-After is under its ceiling) before the POST
		// whose answer is lost goes out, almost 6 minutes after the creation began.
		clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
		f := newFixture(t, []genesystest.Option{genesystest.WithClock(clk.Now)}, genesys.WithClock(clk))
		f.srv.Fail(genesystest.Fault{Method: http.MethodPost, Path: "/api/v2/integrations", Status: 429, RetryAfter: "170", Times: 2})
		f.srv.Fail(genesystest.Fault{Method: http.MethodPost, Path: "/api/v2/integrations", Status: 504})
		ctx := testContext(t)
		err, _ := onFakeClock(t, ctx, clk, func() error {
			_, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
			return err
		})
		require.NoError(t, err)
		var posts []genesystest.Request
		for _, r := range f.srv.Requests() {
			if r.Method == http.MethodPost && r.Path == "/api/v2/integrations" {
				posts = append(posts, r)
			}
		}
		require.Len(t, posts, 4, "429, 429, the lost one, the creation again")
		require.Equal(t, http.StatusGatewayTimeout, posts[2].Status)
		assert.GreaterOrEqual(t, posts[3].Time.Sub(posts[2].Time), 5*time.Minute,
			"created again before the 5 minutes in which Genesys may still carry the lost one out")
		assert.Equal(t, 1, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType))
	})
	t.Run("a creation carried out late is found, not made twice", func(t *testing.T) {
		// A gateway answers 504 at once, and the backend carries the creation out a minute
		// later: two lookups by name find nothing first.
		clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
		srv := genesystest.NewServer()
		t.Cleanup(srv.Close)
		var mu sync.Mutex
		var held *http.Request
		var heldAt time.Time
		posts := 0
		forward := func() {
			mu.Lock()
			r := held
			held = nil
			mu.Unlock()
			if r != nil {
				resp, err := http.DefaultClient.Do(r)
				require.NoError(t, err)
				_ = resp.Body.Close()
			}
		}
		target, err := url.Parse(srv.URL)
		require.NoError(t, err)
		rp := httputil.NewSingleHostReverseProxy(target)
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			due := held != nil && clk.Now().Sub(heldAt) >= time.Minute
			mu.Unlock()
			if due {
				forward()
			}
			if r.Method == http.MethodPost && r.URL.Path == "/api/v2/integrations" {
				mu.Lock()
				posts++
				first := posts == 1
				mu.Unlock()
				if first {
					body, _ := io.ReadAll(r.Body)
					late, _ := http.NewRequest(http.MethodPost, srv.URL+r.URL.Path, bytes.NewReader(body))
					late.Header = r.Header.Clone()
					mu.Lock()
					held, heldAt = late, clk.Now()
					mu.Unlock()
					http.Error(w, `{"message":"gateway timeout","code":"gateway.timeout","status":504}`, http.StatusGatewayTimeout)
					return
				}
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(proxy.Close)
		c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
			genesys.WithBaseURL(proxy.URL), genesys.WithTokenURL(srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy), genesys.WithClock(clk))
		require.NoError(t, err)
		ctx := testContext(t)
		err, _ = onFakeClock(t, ctx, clk, func() error {
			_, err := c.EnsureEventBridgeIntegration(ctx, goodSpec())
			return err
		})
		require.NoError(t, err)
		forward() // a creation still held goes through now, as it would at last
		assert.Equal(t, 1, srv.IntegrationCount(genesys.EventBridgeIntegrationType), "no second integration")
		assert.Equal(t, 1, posts, "the creation is not sent again while Genesys may still carry it out")
	})
	t.Run("the lookup waits as long as the server asked", func(t *testing.T) {
		// A gateway may answer while the backend still creates the integration: looking it up
		// at once could miss it and create a second one.
		clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
		f := newFixture(t, nil, genesys.WithClock(clk))
		f.srv.Fail(genesystest.Fault{Method: http.MethodPost, Path: "/api/v2/integrations", Status: 503, RetryAfter: "2"})
		ctx := testContext(t)
		done := make(chan error, 1)
		go func() {
			_, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
			done <- err
		}()
		for {
			if due, ok := clk.NextDue(); ok && due == 2*time.Second {
				break
			}
			select {
			case err := <-done:
				t.Fatalf("Ensure returned %v without waiting", err)
			case <-ctx.Done():
				t.Fatal("no wait of 2s")
			case <-time.After(time.Millisecond):
			}
		}
		assert.Equal(t, 1, f.srv.Count(http.MethodPost, "/api/v2/integrations"), "created again during the wait")
		err, _ := onFakeClock(t, ctx, clk, func() error { return <-done })
		require.NoError(t, err)
		assert.Equal(t, 1, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType))
		assert.Equal(t, 2, f.srv.Count(http.MethodPost, "/api/v2/integrations"))
	})
	t.Run("a rate-limited create is retried by the client", func(t *testing.T) {
		f := newFixture(t, nil)
		f.srv.Fail(genesystest.Fault{Method: http.MethodPost, Path: "/api/v2/integrations", Status: 429, RetryAfter: "0"})
		_, err := f.client.EnsureEventBridgeIntegration(testContext(t), goodSpec())
		require.NoError(t, err)
		assert.Equal(t, 1, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType))
	})
}

// A run that ends after a creation whose outcome is unclear, while it looks the integration up
// by name, must say that Genesys may still create it: a run again at once could make a second.
func TestEnsureRunEndingInTheLookupAfterALostCreate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cancel bool // the context ends during the lookup instead of the lookup failing
	}{
		{name: "the lookup fails"},
		{name: "the context ends during the lookup", cancel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			var posted atomic.Bool
			release := make(chan struct{})
			t.Cleanup(sync.OnceFunc(func() { close(release) }))
			f.srv.SetHook(func(r *http.Request) {
				switch {
				case r.Method == http.MethodPost && r.URL.Path == "/api/v2/integrations":
					posted.Store(true)
					if !tc.cancel {
						f.srv.Fail(genesystest.Fault{Method: http.MethodGet, Path: "/api/v2/integrations", Status: 503, Times: fastPolicy.MaxAttempts})
					}
					panic(http.ErrAbortHandler) // the request arrived; its answer is lost
				case r.Method == http.MethodGet && r.URL.Path == "/api/v2/integrations" && posted.Load():
					cancel()
					<-release // the caller has given up meanwhile
				}
			})
			_, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
			require.Error(t, err)
			assert.ErrorIs(t, err, genesys.ErrOutcomeUnknown)
			assert.Contains(t, err.Error(), "run again after 5m0s")
			if tc.cancel {
				assert.ErrorIs(t, err, context.Canceled)
			} else {
				assert.ErrorIs(t, err, genesys.ErrServer, "the lookup's failure is kept")
			}
			assert.Equal(t, 1, f.srv.Count(http.MethodPost, "/api/v2/integrations"), "not created again")
			assert.Zero(t, f.srv.PendingFaults())
		})
	}
}

// A caller that gives up while the creation is under way (Ctrl-C on the provisioning command)
// does not know whether Genesys created the integration: running again at once could make two.
func TestEnsureCancelledDuringTheCreation(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	release := make(chan struct{})
	t.Cleanup(sync.OnceFunc(func() { close(release) }))
	f.srv.SetHook(func(r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v2/integrations" {
			cancel()
			<-release // Genesys goes on once the caller has given up
		}
	})
	_, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
	require.Error(t, err)
	assert.ErrorIs(t, err, genesys.ErrOutcomeUnknown)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "run again after 5m0s")
	assert.Equal(t, 1, f.srv.Count(http.MethodPost, "/api/v2/integrations"))
	assert.NotContains(t, f.logs.String(), "looking it up by name after a wait", "nothing is looked up once the caller gave up")
}

func TestEnsureWithGivenOrganizationID(t *testing.T) {
	// Genesys writes the id in lower case in the partner event source, and AWS names the source
	// exactly so: an id given in upper case gives the name in lower case.
	for _, id := range []string{"0f9e8d7c-6b5a-4321-8765-43210fedcba9", "0F9E8D7C-6B5A-4321-8765-43210FEDCBA9"} {
		t.Run(id, func(t *testing.T) {
			f := newFixture(t, nil)
			spec := goodSpec()
			spec.OrganizationID = id
			res, err := f.client.EnsureEventBridgeIntegration(testContext(t), spec)
			require.NoError(t, err)
			assert.Equal(t, "aws.partner/genesys.com/cloud/0f9e8d7c-6b5a-4321-8765-43210fedcba9/contact-centre.prod", res.PartnerEventSource)
			assert.Equal(t, "0f9e8d7c-6b5a-4321-8765-43210fedcba9", res.OrganizationID)
			assert.Zero(t, f.srv.Count("", "/api/v2/organizations"))
		})
	}
}

// The organization id read from the API is written in lower case too, and one that is no UUID
// is refused before anything is written.
func TestEnsureWithOrganizationIDFromTheAPI(t *testing.T) {
	t.Run("upper case", func(t *testing.T) {
		f := newFixture(t, []genesystest.Option{genesystest.WithOrganizationID(strings.ToUpper(genesystest.DefaultOrganizationID))})
		res, err := f.client.EnsureEventBridgeIntegration(testContext(t), goodSpec())
		require.NoError(t, err)
		assert.Equal(t, genesystest.DefaultOrganizationID, res.OrganizationID)
		assert.Equal(t, "aws.partner/genesys.com/cloud/"+genesystest.DefaultOrganizationID+"/contact-centre.prod", res.PartnerEventSource)
	})
	t.Run("not a UUID", func(t *testing.T) {
		f := newFixture(t, []genesystest.Option{genesystest.WithOrganizationID("my-org")})
		res, err := f.client.EnsureEventBridgeIntegration(testContext(t), goodSpec())
		require.Error(t, err)
		assert.Nil(t, res)
		assert.Contains(t, err.Error(), "no usable id")
		assert.Empty(t, f.srv.Writes(), "nothing may be written")
	})
}

func TestPartnerEventSourceName(t *testing.T) {
	assert.Equal(t, "aws.partner/genesys.com/cloud/bb14bed0-f8f9-445d-b9d1-10cecb8569d6/DA-VOICE-SB",
		genesys.PartnerEventSourceName("BB14BED0-F8F9-445D-B9D1-10CECB8569D6", "DA-VOICE-SB"),
		"the organization id in lower case, the suffix as given")
}

func TestEnsureAmbiguousName(t *testing.T) {
	f := newFixture(t, nil)
	a := f.srv.SeedEventBridgeIntegration("fanbridge-events", "123456789012", "eu-west-1", "a", []string{"v2.users.{id}.presence"})
	b := f.srv.SeedEventBridgeIntegration("fanbridge-events", "123456789012", "eu-west-1", "b", []string{"v2.users.{id}.presence"})
	_, err := f.client.EnsureEventBridgeIntegration(testContext(t), goodSpec())
	require.ErrorIs(t, err, genesys.ErrAmbiguousName)
	assert.Contains(t, err.Error(), a)
	assert.Contains(t, err.Error(), b)
	assert.Empty(t, f.srv.Writes())
}

// An integration id is printed, logged and put in errors: one from Genesys that holds a terminal
// escape, a bidirectional override or more than 128 bytes is refused as the answer is read, and
// nothing of it is written out raw.
func TestEnsureRefusesUnprintableIntegrationIDs(t *testing.T) {
	const escapes = "6b1f0c9e\u009b2J\u202edeliver\x1b[0m"
	long := strings.Repeat("6b1f0c9e", 17) // 136 bytes
	listing := func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Path == "/api/v2/integrations" }
	for _, tc := range []struct {
		name   string
		seeds  int // integrations with the spec's name before the run
		id     string
		answer func(*http.Request) bool // the answers whose integration ids become id
		// created: the creation's answer is the one refused; the run looks the integration up
		// by name and goes on.
		created bool
	}{
		{name: "in the listing", seeds: 1, id: escapes, answer: listing},
		{name: "in the listing, over 128 bytes", seeds: 1, id: long, answer: listing},
		{name: "in the listing, the name used twice", seeds: 2, id: escapes, answer: listing},
		{name: "in the answer to enabling it", id: escapes, answer: func(r *http.Request) bool { return r.Method == http.MethodPatch }},
		{name: "in the answer to creating it", id: escapes, created: true,
			answer: func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Path == "/api/v2/integrations" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := genesystest.NewServer()
			t.Cleanup(srv.Close)
			for range tc.seeds {
				srv.SeedEventBridgeIntegration(goodSpec().Name, "123456789012", "eu-west-1", "contact-centre.prod", goodSpec().Topics)
			}
			front := rewritingProxy(t, srv, func(r *http.Request, answer any) {
				if !tc.answer(r) {
					return
				}
				body, _ := answer.(map[string]any)
				if entities, ok := body["entities"].([]any); ok {
					for _, e := range entities {
						e.(map[string]any)["id"] = tc.id
					}
					return
				}
				body["id"] = tc.id
			})
			logs := &syncBuffer{}
			c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
				genesys.WithBaseURL(front), genesys.WithTokenURL(srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy),
				genesys.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
			require.NoError(t, err)
			res, err := c.EnsureEventBridgeIntegration(testContext(t), goodSpec())
			assert.Equal(t, -1, unsafeIndex(logs.String()), "logs %q", logs.String())
			if tc.created {
				require.NoError(t, err)
				assert.Equal(t, 1, srv.IntegrationCount(genesys.EventBridgeIntegrationType), "no second integration")
				assert.Equal(t, 1, srv.Count(http.MethodPost, "/api/v2/integrations"), "the creation is not sent again")
				assert.NotEmpty(t, res.Integration.ID)
				assert.NotEqual(t, tc.id, res.Integration.ID, "the integration found by name")
				return
			}
			require.Error(t, err)
			assert.NotErrorIs(t, err, genesys.ErrAmbiguousName, "the listing is refused before names are compared")
			assert.Contains(t, err.Error(), "integration id")
			assert.Equal(t, -1, unsafeIndex(err.Error()), "error %q", err.Error())
			assert.NotContains(t, err.Error(), long)
			if tc.seeds > 0 {
				assert.Empty(t, srv.Writes(), "nothing is written")
			}
		})
	}
}

func TestIntegrationLifecycle(t *testing.T) {
	f := newFixture(t, []genesystest.Option{genesystest.WithMaxPageSize(2)})
	ctx := testContext(t)
	var ids []string
	for _, suffix := range []string{"a", "b", "c", "d", "e"} {
		ids = append(ids, f.srv.SeedEventBridgeIntegration("n-"+suffix, "123456789012", "eu-west-1", suffix, []string{"v2.users.{id}.presence"}))
	}
	all, err := f.client.ListEventBridgeIntegrations(ctx)
	require.NoError(t, err)
	require.Len(t, all, 5)
	assert.Equal(t, 3, f.srv.Count(http.MethodGet, "/api/v2/integrations"), "three pages of two")
	for i, in := range all {
		assert.Equal(t, ids[i], in.ID)
		assert.Equal(t, genesys.EventBridgeIntegrationType, in.IntegrationType.ID)
	}

	in, err := f.client.DisableIntegration(ctx, ids[0])
	require.NoError(t, err)
	assert.Equal(t, genesys.StateDisabled, in.IntendedState)
	got, err := f.client.GetIntegration(ctx, ids[0])
	require.NoError(t, err)
	assert.Equal(t, genesys.StateDisabled, got.IntendedState)
	assert.Equal(t, "INACTIVE", got.ReportedState.Code)

	require.NoError(t, f.client.DeleteIntegration(ctx, ids[0]))
	_, err = f.client.GetIntegration(ctx, ids[0])
	assert.True(t, genesys.IsNotFound(err))
	err = f.client.DeleteIntegration(ctx, ids[0])
	assert.True(t, genesys.IsNotFound(err))

	for _, bad := range []func() error{
		func() error { _, err := f.client.GetIntegration(ctx, ""); return err },
		func() error { _, err := f.client.DisableIntegration(ctx, ""); return err },
		func() error { return f.client.DeleteIntegration(ctx, "") },
	} {
		assert.Error(t, bad())
	}
}

// An integration switched on before it was configured reports ERROR. Ensure configures it, then
// switches it on again so that Genesys checks the config now stored, and returns the state that
// gives; a second run only reads.
func TestEnsureRestartsAnIntegrationInError(t *testing.T) {
	f := newFixture(t, nil)
	ctx := testContext(t)
	id := f.srv.SeedEventBridgeIntegration("fanbridge-events", "", "", "", nil)
	in, err := f.client.EnableIntegration(ctx, id)
	require.NoError(t, err)
	require.NotNil(t, in.ReportedState)
	require.Equal(t, genesys.ReportedError, in.ReportedState.Code, "the fake refuses to start an unconfigured integration")

	res, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
	require.NoError(t, err)
	assert.True(t, res.ConfigUpdated)
	assert.True(t, res.Enabled, "switched on again")
	require.NotNil(t, res.Integration.ReportedState)
	assert.Equal(t, genesys.ReportedActive, res.Integration.ReportedState.Code)
	assert.Equal(t, "fanbridge-events", res.Integration.Name)

	patches := f.srv.Count(http.MethodPatch, "/api/v2/integrations/")
	res, err = f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
	require.NoError(t, err)
	assert.False(t, res.Changed())
	assert.Equal(t, patches, f.srv.Count(http.MethodPatch, "/api/v2/integrations/"))
}

// An enabled integration whose config this run changed is read again: the result reports its
// state after the change, not the one listed before it. Here the integration was still activating
// when it was listed, and runs by the time the config is written.
func TestEnsureReportsTheStateAfterTheConfigChange(t *testing.T) {
	f := newFixture(t, nil)
	ctx := testContext(t)
	id := f.srv.SeedEventBridgeIntegration("fanbridge-events", "123456789012", "eu-west-1", "contact-centre.prod",
		[]string{"v2.users.{id}.activity"})
	require.True(t, f.srv.SetReportedState(id, "ACTIVATING", ""))
	f.srv.SetHook(func(r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/api/v2/integrations/"+id+"/config/current" {
			f.srv.SetReportedState(id, genesys.ReportedActive, "")
		}
	})
	gets := f.srv.Count(http.MethodGet, "/api/v2/integrations/")
	res, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
	require.NoError(t, err)
	assert.True(t, res.ConfigUpdated)
	assert.False(t, res.Enabled)
	require.NotNil(t, res.Integration.ReportedState)
	assert.Equal(t, genesys.ReportedActive, res.Integration.ReportedState.Code)
	assert.Equal(t, "fanbridge-events", res.Integration.Name)
	assert.Equal(t, gets+2, f.srv.Count(http.MethodGet, "/api/v2/integrations/"),
		"the config read before the write, then the integration after it")
}

// The answer to the config write is lost after Genesys stored it: the client sends it again, and
// the version the first try made refuses the repeat. The config stored is this run's, and the
// result says so.
func TestEnsureCountsAWriteWhoseAnswerWasLost(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.SeedEventBridgeIntegration("fanbridge-events", "123456789012", "eu-west-1", "contact-centre.prod",
		[]string{"v2.users.{id}.activity"})
	f.srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: "/api/v2/integrations/", Status: 504, Processed: true})
	res, err := f.client.EnsureEventBridgeIntegration(testContext(t), goodSpec())
	require.NoError(t, err)
	var puts []int
	for _, r := range f.srv.Requests() {
		if r.Method == http.MethodPut {
			puts = append(puts, r.Status)
		}
	}
	require.Equal(t, []int{http.StatusGatewayTimeout, http.StatusConflict}, puts, "stored, answer lost; the repeat refused")
	assert.True(t, res.ConfigUpdated)
	assert.True(t, res.Changed())
}

// The config write is stored, and a proxy then resets its stream (RST_STREAM PROTOCOL_ERROR, which
// a proxy may send once the backend has the request): the client sends it again, and the version
// the first copy made refuses the repeat. This run wrote the config, and the result says so.
func TestEnsureCountsAWriteStoredBeforeItsStreamWasReset(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reset gatewayReset
	}{
		{"sent again in the same exchange", resetStream},
		// The exchange ends with the refused dial of the second copy; the retrier sends it again.
		{"the dial for the copy refused", resetConnectionDialFails},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := genesystest.NewServer()
			t.Cleanup(srv.Close)
			id := srv.SeedEventBridgeIntegration("fanbridge-events", "123456789012", "eu-west-1", "contact-centre.prod",
				[]string{"v2.users.{id}.activity"})
			var resets atomic.Int32
			g := newResetGateway(t, srv.URL, func(method, path string) gatewayReset {
				if method == http.MethodPut && strings.HasSuffix(path, "/config/current") && resets.Add(1) == 1 {
					return tc.reset
				}
				return passAnswer
			})
			c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
				genesys.WithHTTPClient(&http.Client{Transport: g.transport(t)}),
				genesys.WithBaseURL(g.URL), genesys.WithTokenURL(srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy))
			require.NoError(t, err)
			version := srv.ConfigVersion(id)
			res, err := c.EnsureEventBridgeIntegration(testContext(t), goodSpec())
			require.NoError(t, err)
			var puts []int
			for _, r := range srv.Requests() {
				if r.Method == http.MethodPut {
					puts = append(puts, r.Status)
				}
			}
			require.Equal(t, []int{http.StatusOK, http.StatusConflict}, puts, "stored, stream reset; the repeat refused")
			require.Equal(t, version+1, srv.ConfigVersion(id), "one write stored")
			assert.True(t, res.ConfigUpdated)
			assert.True(t, res.Changed())
		})
	}
}

// A 2xx answer to the integration's creation that cannot be used (a gateway that rewrote the
// body, a body without an id) still means Genesys installed it: the outcome is unknown, so the
// integration is looked up by name rather than created a second time, even when the listing
// lags behind the creation.
func TestEnsureUnusableCreateAnswerIsLookedUp(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		lag        int // listings after the creation that do not show it yet
	}{
		{"not JSON", `<html>ok</html>`, 0},
		{"no id", `{"name":"fanbridge-events"}`, 0},
		{"not JSON, listing lagging", `<html>ok</html>`, 1},
		{"cut off after the headers, listing lagging", "", 1}, // an empty body: cut off
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := genesystest.NewServer()
			t.Cleanup(srv.Close)
			target, err := url.Parse(srv.URL)
			require.NoError(t, err)
			var rewritten atomic.Bool
			var lagging atomic.Int32
			lagging.Store(int32(tc.lag))
			replace := func(r *http.Response, body string) {
				r.Body = io.NopCloser(strings.NewReader(body))
				r.ContentLength = int64(len(body))
				r.Header.Set("Content-Length", strconv.Itoa(len(body)))
			}
			proxy := httputil.NewSingleHostReverseProxy(target)
			proxy.FlushInterval = -1 // the headers, and what body there is, go out at once
			proxy.ModifyResponse = func(r *http.Response) error {
				switch {
				case r.Request.Method == http.MethodPost && r.Request.URL.Path == "/api/v2/integrations" &&
					r.StatusCode/100 == 2 && rewritten.CompareAndSwap(false, true):
					if tc.body == "" {
						// The status and headers go out; the body breaks after a few bytes.
						r.Body = io.NopCloser(io.MultiReader(strings.NewReader(`{"id":`), iotest.ErrReader(errors.New("connection reset"))))
						break
					}
					replace(r, tc.body)
				case r.Request.Method == http.MethodGet && r.Request.URL.Path == "/api/v2/integrations" &&
					rewritten.Load() && lagging.Add(-1) >= 0:
					replace(r, `{"entities":[],"pageSize":25,"pageNumber":1,"total":0,"pageCount":0}`)
				}
				return nil
			}
			front := httptest.NewServer(proxy)
			t.Cleanup(front.Close)
			c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
				genesys.WithBaseURL(front.URL), genesys.WithTokenURL(srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy))
			require.NoError(t, err)

			res, err := c.EnsureEventBridgeIntegration(testContext(t), goodSpec())
			require.NoError(t, err)
			assert.True(t, rewritten.Load())
			assert.Equal(t, 1, srv.IntegrationCount(genesys.EventBridgeIntegrationType), "no second integration")
			assert.Equal(t, 1, srv.Count(http.MethodPost, "/api/v2/integrations"), "the creation is not sent again")
			assert.NotEmpty(t, res.Integration.ID)
			assert.True(t, res.ConfigUpdated)
		})
	}
}

// The config write carries the whole config: properties fanbridge does not manage, and the
// advanced and credentials sections an administrator filled in, are written back as they were.
func TestEnsureKeepsWhatItDoesNotManage(t *testing.T) {
	f := newFixture(t, nil)
	ctx := testContext(t)
	id := f.srv.SeedEventBridgeIntegration("fanbridge-events", "123456789012", "eu-west-1", "contact-centre.prod",
		[]string{"v2.users.{id}.activity"})
	advanced := map[string]any{"retries": 2.0, "labels": []any{"a", "b"}}
	credentials := map[string]any{"basicAuth": map[string]any{"id": "7c0b3e4a-credential", "type": "userDefined"}}
	require.True(t, f.srv.EditIntegrationConfig(id, map[string]any{"displayTimezone": "Europe/Dublin", "weight": 3.0},
		advanced, credentials))

	res, err := f.client.EnsureEventBridgeIntegration(ctx, goodSpec())
	require.NoError(t, err)
	require.True(t, res.ConfigUpdated, "the topics differed")

	cfg, err := f.client.GetIntegrationConfig(ctx, id)
	require.NoError(t, err)
	assert.JSONEq(t, `"Europe/Dublin"`, string(cfg.Properties["displayTimezone"]))
	assert.JSONEq(t, `3`, string(cfg.Properties["weight"]))
	assert.JSONEq(t, `["v2.detail.events.conversation.{id}.customer.end","v2.users.{id}.presence"]`, string(cfg.Properties["eventFilter"]))
	assert.JSONEq(t, `{"retries":2,"labels":["a","b"]}`, string(cfg.Advanced))
	assert.JSONEq(t, `{"basicAuth":{"id":"7c0b3e4a-credential","type":"userDefined"}}`, string(cfg.Credentials))
}

// PATCH and DELETE are safe to repeat: after an unclear failure (a 5xx, whether or not the server
// acted on the request) they are sent again, within provisioning too.
func TestEnablingAndDeletingAreRetriedAfterA5xx(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault genesystest.Fault
		call  func(ctx context.Context, c *genesys.Client, id string) error
		sent  int
	}{
		{"PATCH, 503 twice", genesystest.Fault{Method: http.MethodPatch, Status: 503, Times: 2},
			func(ctx context.Context, c *genesys.Client, id string) error {
				in, err := c.EnableIntegration(ctx, id)
				if err == nil && in.IntendedState != genesys.StateEnabled {
					err = errors.New("not enabled: " + in.IntendedState)
				}
				return err
			}, 3},
		{"PATCH, 504 after the server acted", genesystest.Fault{Method: http.MethodPatch, Status: 504, Processed: true},
			func(ctx context.Context, c *genesys.Client, id string) error {
				_, err := c.DisableIntegration(ctx, id)
				return err
			}, 2},
		{"DELETE, 500", genesystest.Fault{Method: http.MethodDelete, Status: 500},
			func(ctx context.Context, c *genesys.Client, id string) error { return c.DeleteIntegration(ctx, id) }, 2},
		{"DELETE, 502 three times", genesystest.Fault{Method: http.MethodDelete, Status: 502, Times: 3},
			func(ctx context.Context, c *genesys.Client, id string) error { return c.DeleteIntegration(ctx, id) }, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			id := f.srv.SeedEventBridgeIntegration("fanbridge-events", "123456789012", "eu-west-1", "contact-centre.prod",
				[]string{"v2.users.{id}.presence"})
			tc.fault.Path = "/api/v2/integrations/" + id
			f.srv.Fail(tc.fault)
			require.NoError(t, tc.call(testContext(t), f.client, id))
			assert.Zero(t, f.srv.PendingFaults())
			assert.Equal(t, tc.sent, f.srv.Count(tc.fault.Method, "/api/v2/integrations/"+id))
		})
	}
	t.Run("provisioning enables through a 503", func(t *testing.T) {
		f := newFixture(t, nil)
		f.srv.Fail(genesystest.Fault{Method: http.MethodPatch, Path: "/api/v2/integrations/", Status: 503, Times: 2})
		res, err := f.client.EnsureEventBridgeIntegration(testContext(t), goodSpec())
		require.NoError(t, err)
		assert.True(t, res.Enabled)
		assert.Equal(t, genesys.StateEnabled, res.Integration.IntendedState)
		assert.Equal(t, 3, f.srv.Count(http.MethodPatch, "/api/v2/integrations/"))
	})
	t.Run("provisioning replaces through a 503", func(t *testing.T) {
		f := newFixture(t, nil)
		old := f.srv.SeedEventBridgeIntegration("fanbridge-events", "123456789012", "eu-west-1", "old-suffix",
			[]string{"v2.users.{id}.presence"})
		f.srv.Fail(genesystest.Fault{Method: http.MethodDelete, Path: "/api/v2/integrations/", Status: 503})
		spec := goodSpec()
		spec.Replace = true
		res, err := f.client.EnsureEventBridgeIntegration(testContext(t), spec)
		require.NoError(t, err)
		assert.True(t, res.Replaced)
		assert.NotEqual(t, old, res.Integration.ID)
		assert.Equal(t, 2, f.srv.Count(http.MethodDelete, "/api/v2/integrations/"+old))
		assert.Equal(t, 1, f.srv.IntegrationCount(genesys.EventBridgeIntegrationType))
	})
}

// The listing is narrowed by type on the server and again in the client: a server (or a proxy)
// that ignores the integrationType parameter does not make an integration of another type, with
// the same name, count as an EventBridge one.
func TestListingKeepsOnlyTheTypeAskedFor(t *testing.T) {
	f := newFixture(t, nil)
	id := f.srv.SeedEventBridgeIntegration("fanbridge-events", "123456789012", "eu-west-1", "contact-centre.prod",
		goodSpec().Topics)
	front := rewritingProxy(t, f.srv, func(r *http.Request, answer any) {
		if r.Method != http.MethodGet || r.URL.Path != "/api/v2/integrations" {
			return
		}
		body := answer.(map[string]any)
		body["entities"] = append(body["entities"].([]any), map[string]any{
			"id": "0a0b0c0d-0000-4000-9000-000000000001", "name": "fanbridge-events",
			"integrationType": map[string]any{"id": "purecloud-data-actions"}, "intendedState": "ENABLED",
		})
	})
	c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
		genesys.WithBaseURL(front), genesys.WithTokenURL(f.srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx := testContext(t)

	all, err := c.ListEventBridgeIntegrations(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)
	assert.Equal(t, id, all[0].ID)
	every, err := c.ListIntegrations(ctx, "")
	require.NoError(t, err)
	assert.Len(t, every, 2, "no type asked for: every type")

	res, err := c.EnsureEventBridgeIntegration(ctx, goodSpec())
	require.NoError(t, err, "the data actions integration is not a second EventBridge one")
	assert.Equal(t, id, res.Integration.ID)
	assert.False(t, res.Created)
}
