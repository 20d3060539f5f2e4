package lossless_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// answer is one response the sender got; status 0 stands for no response at all (a timeout, a
// refused or broken connection).
type answer struct {
	status int
	what   string // the "status" member of a 2xx body: delivered, duplicate, ignored
}

// outcome is everything the sender saw for one event.
type outcome struct {
	answers []answer
	acked   bool // the last answer was 2xx
	gaveUp  bool // it stopped without a 2xx: attempts exhausted, or the receiver went away
}

// sender posts like an Amazon EventBridge API destination: it retries on 429, 5xx, timeouts and
// connection errors, honouring Retry-After, and stops on 2xx or any other 4xx. Retry-After
// seconds are scaled down (one second lasts retryAfterUnit here) and capped, so that the test
// stays fast; the decision to retry is EventBridge's.
type sender struct {
	url            string
	key            string
	client         *http.Client
	retryAfterUnit time.Duration
	maxWait        time.Duration
	maxAttempts    int
	// gone reports that the receiver has shut down for good: a connection error then ends the
	// event's attempts here (EventBridge would go on retrying against another instance).
	gone func() bool
}

func newSender(url string) *sender {
	return &sender{
		url: url,
		key: apiKey,
		client: &http.Client{
			// EventBridge gives an API destination 5 s per request.
			Timeout:   5 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64},
		},
		retryAfterUnit: 40 * time.Millisecond,
		maxWait:        250 * time.Millisecond,
		maxAttempts:    60,
		gone:           func() bool { return false },
	}
}

func (s *sender) post(ctx context.Context, body []byte) (answer, time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return answer{}, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(apiKeyHeader, s.key)
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{}, 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil && resp.StatusCode/100 == 2 {
		// An answer cut off mid-body is no answer: retry, as EventBridge would.
		return answer{}, 0
	}
	a := answer{status: resp.StatusCode}
	if resp.StatusCode/100 == 2 {
		var v struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(b, &v)
		a.what = v.Status
	}
	var wait time.Duration
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 {
		wait = time.Duration(ra) * s.retryAfterUnit
	}
	return a, wait
}

// deliver posts body until the receiver takes it, refuses it for good, or ctx ends.
func (s *sender) deliver(ctx context.Context, body []byte) outcome {
	var o outcome
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		a, wait := s.post(ctx, body)
		o.answers = append(o.answers, a)
		switch {
		case a.status/100 == 2:
			o.acked = true
			return o
		case a.status == 0 && s.gone():
			o.gaveUp = true
			return o
		case a.status != 0 && a.status != http.StatusTooManyRequests && a.status < 500:
			return o // refused for good: EventBridge does not retry other 4xx
		}
		if attempt == s.maxAttempts || ctx.Err() != nil {
			o.gaveUp = true
			return o
		}
		if wait == 0 {
			wait = backoff
			backoff = min(backoff*2, s.maxWait)
		}
		t := time.NewTimer(min(wait, s.maxWait))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			o.gaveUp = true
			return o
		}
	}
}

// progress counts events whose sending is over and closes milestone channels as counts are
// reached, so that faults can be scheduled by how far the run got rather than by the clock.
type progress struct {
	n     atomic.Int64
	marks map[int64]chan struct{}
}

func newProgress(total int, fractions ...float64) *progress {
	p := &progress{marks: make(map[int64]chan struct{})}
	for _, f := range fractions {
		at := max(int64(float64(total)*f), 1)
		if _, ok := p.marks[at]; !ok {
			p.marks[at] = make(chan struct{})
		}
	}
	return p
}

// at returns the channel closed once the fraction f of the total (as given to newProgress) is
// done.
func (p *progress) at(total int, f float64) <-chan struct{} {
	ch, ok := p.marks[max(int64(float64(total)*f), 1)]
	if !ok {
		panic(fmt.Sprintf("progress: no milestone at %v", f))
	}
	return ch
}

func (p *progress) done() {
	// Each count is reached by exactly one caller, so each channel is closed once.
	if ch, ok := p.marks[p.n.Add(1)]; ok {
		close(ch)
	}
}

// sendAll delivers every event of c from workers goroutines and returns what each saw.
func sendAll(ctx context.Context, s *sender, c *corpus, workers int, p *progress) []outcome {
	out := make([]outcome, len(c.events))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i] = s.deliver(ctx, c.events[i].body)
				p.done()
			}
		}()
	}
feed:
	for i := range c.events {
		select {
		case jobs <- i:
		case <-ctx.Done():
			for j := i; j < len(c.events); j++ {
				out[j] = outcome{gaveUp: true}
			}
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return out
}
