package genesys_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

func TestNewClientValidates(t *testing.T) {
	const secret = "s3cr3t-value-never-shown"
	tests := []struct {
		name          string
		region        genesys.Region
		id, secret    string
		opts          []genesys.Option
		wantSubstring string
	}{
		{"empty id", genesys.USEast1, "", secret, nil, "client id is empty"},
		{"empty secret", genesys.USEast1, "id", " ", nil, "client secret is empty"},
		{"bad region", genesys.Region("api..example"), "id", secret, nil, "not a host name"},
		{"empty region", "", "id", secret, nil, "empty region"},
		{"custom host without login", genesys.Region("genesys.example.net"), "id", secret, nil, "WithTokenURL"},
		{"bad base URL", genesys.USEast1, "id", secret, []genesys.Option{genesys.WithBaseURL("ftp://x")}, "base URL"},
		{"bad token URL", genesys.USEast1, "id", secret, []genesys.Option{genesys.WithTokenURL("http://")}, "token URL"},
		{"nil logger", genesys.USEast1, "id", secret, []genesys.Option{genesys.WithLogger(nil)}, "nil logger"},
		{"bad policy", genesys.USEast1, "id", secret, []genesys.Option{genesys.WithRetryPolicy(retry.Policy{Multiplier: 0.5})}, "Multiplier"},
		{"negative ceiling", genesys.USEast1, "id", secret, []genesys.Option{genesys.WithMaxRetryAfter(-time.Second)}, "MaxRetryAfter"},
		{"user agent injection", genesys.USEast1, "id", secret, []genesys.Option{genesys.WithUserAgent("a\r\nX: y")}, "User-Agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := genesys.NewClient(tt.region, tt.id, tt.secret, tt.opts...)
			require.Error(t, err)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, genesys.ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.wantSubstring)
			assert.NotContains(t, err.Error(), secret)
		})
	}
	t.Run("custom host with token URL", func(t *testing.T) {
		c, err := genesys.NewClient("genesys.example.net:8443", "id", secret, genesys.WithTokenURL("https://auth.example.net/oauth/token"))
		require.NoError(t, err)
		assert.Equal(t, genesys.Region("genesys.example.net:8443"), c.Region())
	})
}

// A refused URL or region is named in the error without the user info, password, query or
// fragment it came with, which may be credentials or tokens.
func TestRefusedURLsDoNotEchoSecrets(t *testing.T) {
	const secret = "Zq7s3cr3tVal"
	newClient := func(opt genesys.Option) error {
		_, err := genesys.NewClient(genesys.USEast1, "id", "client-secret", opt)
		return err
	}
	parseRegion := func(s string) error {
		_, err := genesys.ParseRegion(s)
		return err
	}
	tests := []struct {
		name string
		call func() error
		want string // what the error names instead
	}{
		{"base URL password", func() error { return newClient(genesys.WithBaseURL("https://id:" + secret + "@api.mypurecloud.com")) }, "user info"},
		{"base URL user", func() error { return newClient(genesys.WithBaseURL("https://" + secret + "@api.mypurecloud.com/")) }, "user info"},
		{"base URL query", func() error {
			return newClient(genesys.WithBaseURL("https://api.mypurecloud.com/?access_token=" + secret))
		}, "query"},
		{"base URL fragment", func() error {
			return newClient(genesys.WithBaseURL("https://api.mypurecloud.com/#access_token=" + secret))
		}, "fragment"},
		{"base URL password with a slash", func() error { return newClient(genesys.WithBaseURL("https://id:a/" + secret + "@api.mypurecloud.com")) }, "base URL"},
		{"base URL password with a question mark", func() error { return newClient(genesys.WithBaseURL("https://id:a?" + secret + "@api.mypurecloud.com")) }, "base URL"},
		{"base URL that does not parse", func() error {
			return newClient(genesys.WithBaseURL("https://id:" + secret + "@api.mypurecloud.com:bad/"))
		}, "does not parse"},
		{"token URL password", func() error {
			return newClient(genesys.WithTokenURL("https://id:" + secret + "@login.mypurecloud.com/oauth/token"))
		}, "user info"},
		{"token URL query", func() error {
			return newClient(genesys.WithTokenURL("https://login.mypurecloud.com/oauth/token?client_secret=" + secret))
		}, "query"},
		{"token URL query holding @", func() error {
			return newClient(genesys.WithTokenURL("https://login.mypurecloud.com/oauth/token?user=a@b&client_secret=" + secret))
		}, "query"},
		{"token URL that does not parse", func() error {
			return newClient(genesys.WithTokenURL("https://login.mypurecloud.com/%zz?client_secret=" + secret))
		}, "does not parse"},
		{"region URL password", func() error { return parseRegion("https://id:" + secret + "@api.mypurecloud.ie/") }, "not a host name"},
		{"region URL user", func() error { return parseRegion(secret + "@mypurecloud.ie") }, "not a host name"},
		{"region URL query", func() error { return parseRegion("api.mypurecloud.ie/?access_token=" + secret) }, "not a host name"},
		{"region value", func() error {
			_, err := genesys.NewClient(genesys.Region("id:"+secret+"@api.mypurecloud.ie"), "id", "client-secret")
			return err
		}, "not a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.Error(t, err)
			assert.ErrorIs(t, err, genesys.ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, strings.ToLower(err.Error()), strings.ToLower(secret))
		})
	}
}

// documentedRegions is the region table of Genesys' documentation, AWS region and API host, in the
// order Regions returns them: the constants must say exactly this.
var documentedRegions = []struct {
	aws, host string
	constant  genesys.Region
}{
	{"us-east-1", "api.mypurecloud.com", genesys.USEast1},
	{"us-east-2", "api.use2.us-gov-pure.cloud", genesys.USEast2},
	{"us-west-2", "api.usw2.pure.cloud", genesys.USWest2},
	{"ca-central-1", "api.cac1.pure.cloud", genesys.CACentral1},
	{"sa-east-1", "api.sae1.pure.cloud", genesys.SAEast1},
	{"mx-central-1", "api.mxc1.pure.cloud", genesys.MXCentral1},
	{"eu-west-1", "api.mypurecloud.ie", genesys.EUWest1},
	{"eu-west-2", "api.euw2.pure.cloud", genesys.EUWest2},
	{"eu-central-1", "api.mypurecloud.de", genesys.EUCentral1},
	{"eu-central-2", "api.euc2.pure.cloud", genesys.EUCentral2},
	{"me-central-1", "api.mec1.pure.cloud", genesys.MECentral1},
	{"ap-south-1", "api.aps1.pure.cloud", genesys.APSouth1},
	{"ap-southeast-1", "api.apse1.pure.cloud", genesys.APSoutheast1},
	{"ap-southeast-2", "api.mypurecloud.com.au", genesys.APSoutheast2},
	{"ap-northeast-1", "api.mypurecloud.jp", genesys.APNortheast1},
	{"ap-northeast-2", "api.apne2.pure.cloud", genesys.APNortheast2},
	{"ap-northeast-3", "api.apne3.pure.cloud", genesys.APNortheast3},
	{"eusc-de-east-1", "api.edee1.eusc-pure.cloud", genesys.EUSCDEEast1},
}

func TestRegions(t *testing.T) {
	all := genesys.Regions()
	require.Len(t, all, len(documentedRegions))
	for i, d := range documentedRegions {
		t.Run(d.aws, func(t *testing.T) {
			assert.Equal(t, genesys.Region(d.host), d.constant)
			assert.Equal(t, d.constant, all[i])
			assert.Equal(t, d.host, d.constant.APIHost())
			assert.Equal(t, "login."+strings.TrimPrefix(d.host, "api."), d.constant.LoginHost())
			assert.Equal(t, d.aws, d.constant.AWSRegion())
			parsed, err := genesys.ParseRegion(d.aws)
			require.NoError(t, err)
			assert.Equal(t, d.constant, parsed)
			parsed, err = genesys.ParseRegion(d.host)
			require.NoError(t, err)
			assert.Equal(t, d.constant, parsed)
		})
	}
	assert.Equal(t, "login.mypurecloud.com", genesys.USEast1.LoginHost())
	assert.Equal(t, "login.edee1.eusc-pure.cloud", genesys.EUSCDEEast1.LoginHost())
	assert.Equal(t, "", genesys.Region("api.example.net").AWSRegion())
	assert.Equal(t, "", genesys.Region("example.net").LoginHost())

	parse := []struct {
		in   string
		want genesys.Region
	}{
		{"us-east-1", genesys.USEast1},
		{" EU-WEST-1 ", genesys.EUWest1},
		{"mypurecloud.de", genesys.EUCentral1},
		{"api.mypurecloud.jp", genesys.APNortheast1},
		{"login.usw2.pure.cloud", genesys.USWest2},
		{"https://api.mypurecloud.com.au/", genesys.APSoutheast2},
		{"api.genesys.example.net", "api.genesys.example.net"},
	}
	for _, p := range parse {
		t.Run("parse "+p.in, func(t *testing.T) {
			got, err := genesys.ParseRegion(p.in)
			require.NoError(t, err)
			assert.Equal(t, p.want, got)
		})
	}
	for _, bad := range []string{"", "https://", "api.bad_host", "api.x:99999999", "api.-x.com", "a b"} {
		t.Run("reject "+bad, func(t *testing.T) {
			_, err := genesys.ParseRegion(bad)
			assert.ErrorIs(t, err, genesys.ErrInvalidConfig)
		})
	}
}

// The token is renewed when 10% of its lifetime, at most 60 seconds, remains: before the server
// would refuse it, and not sooner.
func TestTokenCachedAndRenewedBeforeExpiry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		reuse    time.Duration // after this, more than the margin is left: the token is reused
		renew    time.Duration // after this, less than the margin is left: it is renewed
	}{
		// 10% of 300s is 30s: with 100s left the token is reused, with 25s left replaced.
		{"5 minutes, renewed in the last 10%", 300 * time.Second, 200 * time.Second, 275 * time.Second},
		// 10% of 24h is 2.4h, above the 60s ceiling: the token serves until its last minute.
		{"24 hours, renewed in the last minute", 24 * time.Hour, 24*time.Hour - 61*time.Second, 24*time.Hour - 59*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := retrytest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			f := newFixture(t, []genesystest.Option{genesystest.WithClock(clk.Now), genesystest.WithTokenLifetime(tc.lifetime)},
				genesys.WithClock(clk))
			ctx := testContext(t)

			_, err := f.client.Organization(ctx)
			require.NoError(t, err)
			require.Equal(t, 1, f.srv.TokensIssued())

			clk.Advance(tc.reuse)
			_, err = f.client.Organization(ctx)
			require.NoError(t, err)
			assert.Equal(t, 1, f.srv.TokensIssued(), "a token with %v left must be reused", tc.lifetime-tc.reuse)

			clk.Advance(tc.renew - tc.reuse)
			_, err = f.client.Organization(ctx)
			require.NoError(t, err)
			assert.Equal(t, 2, f.srv.TokensIssued(), "a token with %v left must be renewed", tc.lifetime-tc.renew)
			for _, r := range f.srv.Requests() {
				assert.NotEqual(t, http.StatusUnauthorized, r.Status, "no request may be refused: %+v", r)
			}
		})
	}
}

func TestTokenRenewedAfter401(t *testing.T) {
	f := newFixture(t, nil)
	ctx := testContext(t)
	_, err := f.client.Organization(ctx)
	require.NoError(t, err)

	f.srv.ExpireTokens() // revoked behind the client's back
	f.srv.ResetLog()
	org, err := f.client.Organization(ctx)
	require.NoError(t, err)
	assert.Equal(t, genesystest.DefaultOrganizationID, org.ID)

	var statuses []int
	for _, r := range f.srv.Requests() {
		statuses = append(statuses, r.Status)
	}
	assert.Equal(t, []int{401, 200, 200}, statuses, "refused call, new token, replayed call")

	t.Run("a second 401 is final", func(t *testing.T) {
		f.srv.ResetLog()
		f.srv.Fail(genesystest.Fault{Path: "/api/v2/organizations/me", Status: 401, Times: 2, Code: "bad.credentials"})
		_, err := f.client.Organization(ctx)
		require.Error(t, err)
		assert.True(t, genesys.IsUnauthorized(err))
		assert.True(t, retry.IsPermanent(err))
		assert.Equal(t, 2, f.srv.Count(http.MethodGet, "/api/v2/organizations/me"))
	})
}

func TestWrongCredentials(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	const wrong = "wrong-secret-8d1e"
	c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, wrong,
		genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy),
		genesys.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	require.NoError(t, err)

	_, err = c.Organization(testContext(t))
	require.Error(t, err)
	var te *genesys.TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, http.StatusUnauthorized, te.Status)
	assert.Equal(t, "invalid_client", te.Code)
	assert.Equal(t, "client not found", te.Description)
	assert.NotEmpty(t, te.CorrelationID)
	assert.True(t, genesys.IsUnauthorized(err))
	assert.True(t, retry.IsPermanent(err), "refused credentials are not retried")
	assert.Equal(t, 1, srv.Count(http.MethodPost, "/oauth/token"))
	assert.Equal(t, 0, srv.Count("", "/api/"))
	assert.NotContains(t, err.Error(), wrong)
	assert.NotContains(t, logs.String(), wrong)
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	clk := retrytest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	f := newFixture(t, []genesystest.Option{genesystest.WithClock(clk.Now)}, genesys.WithClock(clk))
	ctx := testContext(t)
	f.srv.Fail(genesystest.Fault{Path: "/api/v2/organizations/me", Status: 429, RetryAfter: "7"})

	done := make(chan error, 1)
	go func() {
		_, err := f.client.Organization(ctx)
		done <- err
	}()
	require.NoError(t, clk.WaitTimers(ctx, 1))
	wait, ok := clk.NextDue()
	require.True(t, ok)
	assert.Equal(t, 7*time.Second, wait, "the retry waits what Retry-After asked")
	select {
	case err := <-done:
		t.Fatalf("returned before the wait was over: %v", err)
	default:
	}
	clk.Advance(wait)
	require.NoError(t, <-done)
	assert.Equal(t, 2, f.srv.Count(http.MethodGet, "/api/v2/organizations/me"))
}

func TestQuotaRetryAfterFailsAtOnce(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.Fail(genesystest.Fault{Path: "/api/v2/organizations/me", Status: 429, RetryAfter: "3600"})
	start := time.Now()
	_, err := f.client.Organization(testContext(t))
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.ErrorIs(t, err, genesys.ErrQuotaExhausted)
	assert.True(t, genesys.IsRateLimited(err))
	assert.Contains(t, err.Error(), "1h0m0s")
	d, ok := retry.RetryAfter(err)
	assert.True(t, ok)
	assert.Equal(t, time.Hour, d, "the error carries the wait")
	assert.False(t, retry.IsPermanent(err), "a quota comes back: callers may retry after the wait")
	var apiErr *genesys.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "too.many.requests.retry.after", apiErr.Code)
	assert.Equal(t, 1, f.srv.Count(http.MethodGet, "/api/v2/organizations/me"))

	t.Run("ceiling is configurable", func(t *testing.T) {
		f := newFixture(t, nil, genesys.WithMaxRetryAfter(time.Second))
		f.srv.Fail(genesystest.Fault{Path: "/api/v2/organizations/me", Status: 429, RetryAfter: "2"})
		_, err := f.client.Organization(testContext(t))
		assert.ErrorIs(t, err, genesys.ErrQuotaExhausted)
	})
}

// The ceiling is the longest wait the client accepts: a Retry-After of exactly 180 seconds is
// waited for, one second more is a quota.
func TestRetryAfterAtTheCeiling(t *testing.T) {
	for _, tc := range []struct {
		retryAfter string
		waited     time.Duration
		quota      bool
	}{
		{"180", 180 * time.Second, false},
		{"181", 0, true},
		{"180.5", 0, true},
	} {
		t.Run(tc.retryAfter, func(t *testing.T) {
			clk := retrytest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			f := newFixture(t, []genesystest.Option{genesystest.WithClock(clk.Now)}, genesys.WithClock(clk))
			ctx := testContext(t)
			f.srv.Fail(genesystest.Fault{Path: "/api/v2/organizations/me", Status: 429, RetryAfter: tc.retryAfter})
			err, waited := onFakeClock(t, ctx, clk, func() error {
				_, err := f.client.Organization(ctx)
				return err
			})
			assert.Equal(t, tc.waited, waited)
			if tc.quota {
				require.ErrorIs(t, err, genesys.ErrQuotaExhausted)
				assert.Equal(t, 1, f.srv.Count(http.MethodGet, "/api/v2/organizations/me"))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, 2, f.srv.Count(http.MethodGet, "/api/v2/organizations/me"))
		})
	}
}

func TestServerErrors(t *testing.T) {
	tests := []struct {
		name      string
		fault     genesystest.Fault
		wantErr   bool
		wantCalls int
		permanent bool
	}{
		{"5xx burst is retried", genesystest.Fault{Status: 503, Times: 3}, false, 4, false},
		{"502 then success", genesystest.Fault{Status: 502}, false, 2, false},
		{"501 is not retried", genesystest.Fault{Status: 501, Code: "not.implemented"}, true, 1, true},
		{"404 is not retried", genesystest.Fault{Status: 404, Code: "not.found"}, true, 1, true},
		{"400 is not retried", genesystest.Fault{Status: 400}, true, 1, true},
		{"403 is not retried", genesystest.Fault{Status: 403, Code: "missing.permissions"}, true, 1, true},
		{"retries run out", genesystest.Fault{Status: 500, Times: 10}, true, 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			tt.fault.Path = "/api/v2/organizations/me"
			f.srv.Fail(tt.fault)
			_, err := f.client.Organization(testContext(t))
			assert.Equal(t, tt.wantCalls, f.srv.Count(http.MethodGet, "/api/v2/organizations/me"))
			if !tt.wantErr {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tt.permanent, retry.IsPermanent(err))
			var apiErr *genesys.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tt.fault.Status, apiErr.Status)
			assert.NotEmpty(t, apiErr.CorrelationID, "ININ-Correlation-Id is kept")
			assert.NotEmpty(t, apiErr.ContextID)
			assert.Equal(t, http.MethodGet, apiErr.Method)
			assert.Equal(t, "/api/v2/organizations/me", apiErr.Path)
			assert.Contains(t, err.Error(), apiErr.CorrelationID)
			if !tt.permanent {
				var re *retry.Error
				require.ErrorAs(t, err, &re)
				assert.Equal(t, retry.ReasonAttempts, re.Reason)
				assert.True(t, errors.Is(err, genesys.ErrServer))
			}
		})
	}
	t.Run("sentinels", func(t *testing.T) {
		f := newFixture(t, nil)
		f.srv.Fail(genesystest.Fault{Path: "/api/", Status: 409})
		f.srv.Fail(genesystest.Fault{Path: "/api/", Status: 404})
		_, err := f.client.Organization(testContext(t))
		assert.True(t, genesys.IsConflict(err))
		assert.False(t, genesys.IsNotFound(err))
		_, err = f.client.GetIntegration(testContext(t), "nope")
		assert.True(t, genesys.IsNotFound(err))
		assert.False(t, genesys.IsForbidden(err))
	})
}

// A message from the server can hold anything; printed on a terminal, a C1 control such as CSI
// (U+009B) starts an escape sequence, and a bidirectional override makes the text read in
// another order.
func TestServerTextIsStrippedOfControlCharacters(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.Fail(genesystest.Fault{Method: http.MethodGet, Path: "/api/v2/organizations/me", Status: http.StatusNotFound,
		Code: "not\u0085.found", Message: "gone\u009b2J \u202edeliver\u202c\u2066 \u200f\x1b[0m"})
	_, err := f.client.Organization(testContext(t))
	require.Error(t, err)
	var apiErr *genesys.APIError
	require.ErrorAs(t, err, &apiErr)
	for _, s := range []string{err.Error(), apiErr.Code, apiErr.Message} {
		assert.Equal(t, -1, strings.IndexFunc(s, func(r rune) bool {
			return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
		}), "%q", s)
	}
	assert.Contains(t, apiErr.Message, "gone", "the readable text is kept")
	assert.Contains(t, apiErr.Message, "deliver")
}

// The details entries of an error answer are server text too, kept in the APIError for callers
// to print: they are capped and cleaned like the message.
func TestErrorDetailsAreCappedAndStripped(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	long := strings.Repeat("x", 30<<10) // twice that fits in the 64 KiB of an error answer the client reads
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"message": "bad", "code": "bad.request", "details": []map[string]string{{
			"errorCode": "invalid\u009b2J", "fieldName": "name\u202eevil\x1b[0m", "entityId": "id\u0085" + long, "entityName": long,
		}}})
	}))
	t.Cleanup(api.Close)
	c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
		genesys.WithBaseURL(api.URL), genesys.WithTokenURL(srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy))
	require.NoError(t, err)
	_, err = c.Organization(testContext(t))
	var apiErr *genesys.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Len(t, apiErr.Details, 1)
	d := apiErr.Details[0]
	for _, s := range []string{d.ErrorCode, d.FieldName, d.EntityID, d.EntityName} {
		assert.Equal(t, -1, unsafeIndex(s), "%q", s)
		assert.LessOrEqual(t, len(s), 128)
	}
	assert.Contains(t, d.ErrorCode, "invalid", "the readable text is kept")
	assert.Contains(t, d.FieldName, "evil")
	assert.True(t, strings.HasPrefix(d.EntityName, "xxx"))
}

func TestConnectionErrorsAreRetried(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	// A port nobody listens on: every connection is refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + l.Addr().String()
	require.NoError(t, l.Close())

	retries := 0
	c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
		genesys.WithBaseURL(dead), genesys.WithTokenURL(srv.TokenURL()),
		genesys.WithRetryPolicy(retry.Policy{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, MaxAttempts: 3}),
		genesys.WithLogger(slog.New(slog.NewTextHandler(countingWriter(&retries, "retrying request"), nil))))
	require.NoError(t, err)
	_, err = c.Organization(testContext(t))
	require.Error(t, err)
	var re *retry.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 3, re.Attempts)
	assert.Equal(t, 2, retries)
	var op *net.OpError
	assert.ErrorAs(t, err, &op)
}

type countWriter struct {
	n   *int
	sub string
}

func (w countWriter) Write(p []byte) (int, error) {
	*w.n += strings.Count(string(p), w.sub)
	return len(p), nil
}

func countingWriter(n *int, sub string) countWriter { return countWriter{n: n, sub: sub} }

func TestUserAgentAndNoSecretsInLogs(t *testing.T) {
	f := newFixture(t, []genesystest.Option{genesystest.WithTokenLifetime(time.Hour)}, genesys.WithUserAgent("acme-contact-centre/2"))
	ctx := testContext(t)
	f.srv.Fail(genesystest.Fault{Path: "/api/v2/organizations/me", Status: 429, RetryAfter: "0"})
	f.srv.Fail(genesystest.Fault{Path: "/api/v2/integrations", Status: 503})
	_, err := f.client.Organization(ctx)
	require.NoError(t, err)
	f.srv.ExpireTokens()
	_, err = f.client.ListEventBridgeIntegrations(ctx)
	require.NoError(t, err)
	_, err = f.client.GetIntegration(ctx, "missing")
	require.Error(t, err)

	for _, r := range f.srv.Requests() {
		assert.Equal(t, "acme-contact-centre/2", r.UserAgent, "%s %s", r.Method, r.Path)
	}
	logs := f.logs.String()
	require.Contains(t, logs, "retrying request", "the logger saw the retries")
	require.Contains(t, logs, "fetched access token")
	assertNoSecrets(t, f.srv, "logs", logs)
	assertNoSecrets(t, f.srv, "error", err.Error())
	assert.NotContains(t, logs, "Bearer")
}

func TestCanceledContext(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.client.Organization(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, retry.ClassCanceled, retry.Classify(err))
}

// An AWS region name that is not in the table, or one dressed as a URL, and a host without a dot
// are configuration errors: taken for hosts, they would only fail, after every retry, when the
// host "api.eu-north-1" is looked up.
func TestParseRegionRefusesWhatNamesNoGenesysRegion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"eu-north-1", "not an AWS region Genesys Cloud runs in (us-east-1, us-east-2, "},
		{"US-EAST-3", "not an AWS region Genesys Cloud runs in"},
		{"us-gov-west-1", "not an AWS region Genesys Cloud runs in"},
		{"https://eu-north-1/", "not an AWS region Genesys Cloud runs in"},
		{"eu-west-1/", "write the AWS region name eu-west-1 alone"},
		{"https://eu-west-1", "write the AWS region name eu-west-1 alone"},
		{"eu-west-1:443", "write the AWS region name eu-west-1 alone"},
		{"localhost", "not a host name with a domain, such as mypurecloud.ie, nor an AWS region name"},
		{"https://localhost:8443/", "not a host name with a domain, such as mypurecloud.ie, nor an AWS region name"},
		{"api", "not a host name with a domain, such as mypurecloud.ie, nor an AWS region name"},
		{"login", "not a host name with a domain, such as mypurecloud.ie, nor an AWS region name"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := genesys.ParseRegion(tc.in)
			require.ErrorIs(t, err, genesys.ErrInvalidConfig, "got region %q", r)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("the error lists every region", func(t *testing.T) {
		_, err := genesys.ParseRegion("eu-north-1")
		require.Error(t, err)
		for _, d := range documentedRegions {
			assert.Contains(t, err.Error(), d.aws)
		}
	})
	t.Run("the documented forms still read", func(t *testing.T) {
		for in, want := range map[string]genesys.Region{
			"eusc-de-east-1":                  genesys.EUSCDEEast1,
			"mypurecloud.ie":                  genesys.EUWest1,
			"login.mypurecloud.ie":            genesys.EUWest1,
			"https://login.mypurecloud.ie/":   genesys.EUWest1,
			"mypurecloud.com:443":             "api.mypurecloud.com:443",
			"genesys.example.net":             "api.genesys.example.net",
			"https://api.genesys.example.net": "api.genesys.example.net",
		} {
			got, err := genesys.ParseRegion(in)
			require.NoError(t, err, in)
			assert.Equal(t, want, got, in)
		}
	})
}
