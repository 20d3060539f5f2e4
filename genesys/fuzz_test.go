package genesys

// The parsers fuzzed here are unexported, so this file is an internal test; every other test of
// the package is black-box.

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

var fuzzNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func FuzzParseAPIError(f *testing.F) {
	f.Add(429, "c0ffee00-0000-4000-8000-000000000001", "3600",
		[]byte(`{"message":"Rate limit exceeded the maximum. Retry the request in [3600] seconds","code":"too.many.requests.retry.after","status":429,"contextId":"a1b2","details":[],"errors":[]}`))
	f.Add(404, "", "", []byte(`{"message":"The requested entity was not found.","code":"not.found","status":404,"details":[{"errorCode":"x","fieldName":"id","entityId":"1","entityName":"n"}],"errors":[{"message":"m","code":"c","status":404}]}`))
	f.Add(409, "x", "", []byte(`{"message":"The version supplied (1) does not match the current version (2).","code":"conflict","status":409}`))
	f.Add(502, "", "Wed, 21 Oct 2015 07:28:00 GMT", []byte("<html><body>Bad gateway</body></html>"))
	f.Add(500, "\x00\xff", "-1", []byte("\xff\xfe{"))
	f.Add(404, "c0ffee\u202e", "", []byte(`{"message":"not found\u009b2J\u202eevil\u2066","code":"not\u200f.found\u0085","contextId":"\u061c"}`))
	f.Fuzz(func(t *testing.T, status int, corr, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("ININ-Correlation-Id", corr)
		h.Set("Retry-After", retryAfter)
		e := parseAPIError(status, h, body, fuzzNow)
		if e == nil {
			t.Fatal("nil error")
		}
		msg := e.Error()
		if !utf8.ValidString(msg) {
			t.Fatalf("error text is not UTF-8: %q", msg)
		}
		if strings.IndexFunc(msg, unsafeRune) >= 0 {
			t.Fatalf("error text has control or bidirectional formatting characters: %q", msg)
		}
		if len(e.Message) > maxErrorText || len(e.Code) > 128 || len(e.CorrelationID) > 128 || len(e.ContextID) > 128 {
			t.Fatalf("field not capped: %d %d %d %d", len(e.Message), len(e.Code), len(e.CorrelationID), len(e.ContextID))
		}
		if len(e.Details) > 16 || len(e.Errors) > 16 {
			t.Fatal("details not capped")
		}
		if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfterValue {
			t.Fatalf("retry-after out of range: %v", e.RetryAfter)
		}
		if e.Status != status {
			t.Fatalf("status changed: %d", e.Status)
		}
	})
}

func FuzzParseTokenError(f *testing.F) {
	f.Add(401, []byte(`{"error":"invalid_client","description":"client not found","error_description":"client not found"}`))
	f.Add(400, []byte(`{"error":"unsupported_grant_type"}`))
	f.Add(429, []byte(`not json`))
	f.Add(400, []byte(`{"error":"invalid\u009b","error_description":"refused\u202e\u0085"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := parseTokenError(status, http.Header{}, body, fuzzNow)
		msg := e.Error()
		if !utf8.ValidString(msg) || strings.IndexFunc(msg, unsafeRune) >= 0 {
			t.Fatalf("unsafe error text: %q", msg)
		}
		if len(e.Description) > maxErrorText || len(e.Code) > 128 {
			t.Fatal("field not capped")
		}
	})
}

// unsafeRune reports runes that error text must not carry: they can drive a terminal, or make the
// text display in another order than it reads.
func unsafeRune(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "7", "3600", "86400", "1.5", " 12 ", "", "-1", "abc", "1e308", "99999999999999999999",
		"Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 04 Mar 2026 06:06:07 GMT", "Monday, 02-Jan-06 15:04:05 MST", "NaN", "+5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, fuzzNow)
		if !ok {
			if d != 0 {
				t.Fatalf("unreadable %q gave %v", v, d)
			}
			return
		}
		if d < 0 || d > maxRetryAfterValue {
			t.Fatalf("%q gave %v, out of range", v, d)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7", 7 * time.Second, true},
		{" 3600 ", time.Hour, true},
		{"0.25", 250 * time.Millisecond, true},
		{"Wed, 04 Mar 2026 05:07:07 GMT", time.Minute, true},
		{"Wed, 04 Mar 2026 05:00:00 GMT", 0, true},
		{"1e30", maxRetryAfterValue, true},
		{"", 0, false},
		{"-3", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, ok := parseRetryAfter(tt.in, fuzzNow)
			if d != tt.want || ok != tt.ok {
				t.Fatalf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, d, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseRegion: whatever ParseRegion accepts is a Region whose hosts are plain DNS names it
// can build URLs from, and reading its own API host, login host or AWS region name again gives the
// same Region.
func FuzzParseRegion(f *testing.F) {
	for _, s := range []string{"eu-west-1", "api.mypurecloud.ie", "login.mypurecloud.ie", "mypurecloud.ie",
		"https://api.mypurecloud.ie/", "HTTPS://API.MYPURECLOUD.IE", "api.example.net", "", "api.", "..",
		"https://user:pw@api.mypurecloud.ie/x?y", "api.mypurecloud.ie:443", "ap-south-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRegion(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("ParseRegion(%q): error %v does not wrap ErrInvalidConfig", s, err)
			}
			return
		}
		for _, host := range []string{r.APIHost(), r.LoginHost()} {
			u, err := url.Parse("https://" + host + "/api/v2/")
			if err != nil || u.Host != host || strings.ContainsAny(host, "/?#@ \t\r\n") {
				t.Fatalf("ParseRegion(%q) = %q: host %q does not make a URL (%v)", s, r, host, err)
			}
		}
		for _, again := range []string{r.APIHost(), r.LoginHost(), r.String()} {
			r2, err := ParseRegion(again)
			if err != nil || r2 != r {
				t.Fatalf("ParseRegion(%q) = %q, but ParseRegion(%q) = %q, %v", s, r, again, r2, err)
			}
		}
		if aws := r.AWSRegion(); aws != "" {
			if r2, err := ParseRegion(aws); err != nil || r2 != r {
				t.Fatalf("ParseRegion(%q) = %q, but its AWS region %q reads as %q, %v", s, r, aws, r2, err)
			}
		}
	})
}

// FuzzRefusedURLErrorsHideSecrets: a secret placed in the user info, password, query or fragment
// of a base URL, token URL or region never reaches the error that refuses it, whatever host and
// path surround it. The secret is fenced by a marker that must not appear at all, so that a part
// of it showing is caught too.
func FuzzRefusedURLErrorsHideSecrets(f *testing.F) {
	for _, seed := range [][3]string{
		{"api.mypurecloud.com", "/", "s3cr3t"},
		{"login.mypurecloud.ie", "/oauth/token", "a/b?c#d@e"},
		{"api.example.net:bad", "/%zz", "x:y"},
		{"a@b", "/p?q=1@", "?"},
		{"", "", ""},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	const marker = "zq7"
	f.Fuzz(func(t *testing.T, host, path, secret string) {
		if strings.Contains(strings.ToLower(host+path), marker) {
			t.Skip()
		}
		s := "Zq7" + secret + "Zq7"
		check := func(in string, err error) {
			if err != nil && strings.Contains(strings.ToLower(err.Error()), marker) {
				t.Fatalf("the error refusing %q shows the secret: %v", in, err)
			}
		}
		for _, u := range []string{
			"https://" + s + "@" + host + path,
			"https://id:" + s + "@" + host + path,
			"https://" + host + path + "?access_token=" + s,
			"https://" + host + path + "#" + s,
		} {
			_, err := parseHTTPURL("base URL", u)
			check(u, err)
		}
		for _, r := range []string{
			s + "@" + host,
			"https://id:" + s + "@" + host + path,
			host + path + "?access_token=" + s,
		} {
			_, err := ParseRegion(r)
			check(r, err)
			err = Region(r).validate()
			check(r, err)
		}
	})
}
