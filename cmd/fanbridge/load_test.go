package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
)

// Kinds of events the load generators post: a long chat that ended, and a conversation start.
const (
	kindEnd = iota
	kindStart
	nKinds
)

var kindFiles = [nKinds]string{
	kindEnd:   "v2.detail.events.conversation.customer.end.json",
	kindStart: "v2.detail.events.conversation.customer.start.json",
}

// envelopes renders Genesys samples under new event ids, so that every post is a distinct event
// (deduplication would otherwise acknowledge repeats without delivering them).
type envelopes struct {
	docs [nKinds]map[string]json.RawMessage
}

func newEnvelopes(t *testing.T) *envelopes {
	t.Helper()
	e := &envelopes{}
	for k, f := range kindFiles {
		b, err := os.ReadFile(filepath.Join("testdata", "genesys", f))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &e.docs[k]))
	}
	return e
}

func (e *envelopes) body(kind int, id string) []byte {
	doc := make(map[string]json.RawMessage, len(e.docs[kind]))
	for k, v := range e.docs[kind] {
		doc[k] = v
	}
	doc["id"], _ = json.Marshal(id)
	b, _ := json.Marshal(doc)
	return b
}

// attempt is one POST of the load: the phases (set by the test) in which it started and ended,
// and what came back.
type attempt struct {
	ID         string
	Kind       int
	Start, End int32
	Status     int
	Body       string
	Err        error
}

// posters post distinct events from several goroutines until told to stop, recording every
// attempt. The test moves phase forward at the moments it wants to reason about.
type posters struct {
	url    string
	key    string
	env    *envelopes
	client *http.Client
	// quitFrom: a goroutine whose request fails at the transport level, having started in this
	// phase or later, stops (the server is gone).
	quitFrom int32

	phase    atomic.Int32
	stopping atomic.Bool
	wg       sync.WaitGroup

	mu      sync.Mutex
	all     []attempt
	ok      int
	done    map[int32]int // completed attempts by start phase
	changed chan struct{}
}

func startPosters(ctx context.Context, t *testing.T, n int, url, key string, env *envelopes, quitFrom int32) *posters {
	t.Helper()
	p := &posters{
		url: url, key: key, env: env, quitFrom: quitFrom,
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}},
		done:    map[int32]int{},
		changed: make(chan struct{}),
	}
	prefix := strings.ReplaceAll(t.Name(), "/", ".")
	for g := range n {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for i := 0; !p.stopping.Load() && ctx.Err() == nil; i++ {
				kind := (g + i) % nKinds
				a := attempt{ID: fmt.Sprintf("%s-%d-%d", prefix, g, i), Kind: kind, Start: p.phase.Load()}
				a.Status, a.Body, a.Err = post(ctx, p.client, p.url, p.env.body(kind, a.ID), map[string]string{"X-Api-Key": p.key})
				a.End = p.phase.Load()
				if a.Err != nil && ctx.Err() != nil {
					return // the test's own deadline: not an answer from the service
				}
				p.record(a)
				if a.Err != nil && a.Start >= p.quitFrom {
					return
				}
			}
		}()
	}
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *posters) record(a attempt) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all = append(p.all, a)
	if a.Err == nil && a.Status/100 == 2 {
		p.ok++
	}
	p.done[a.Start]++
	close(p.changed)
	p.changed = make(chan struct{})
}

// waitFor waits until cond, evaluated on the number of 2xx answers and the completed attempts
// by start phase, holds.
func (p *posters) waitFor(ctx context.Context, what string, cond func(ok int, done map[int32]int) bool) error {
	for {
		p.mu.Lock()
		met, ch := cond(p.ok, p.done), p.changed
		p.mu.Unlock()
		if met {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			p.mu.Lock()
			defer p.mu.Unlock()
			return fmt.Errorf("waiting for %s: %w (2xx: %d, completed by phase: %v)", what, ctx.Err(), p.ok, p.done)
		}
	}
}

// waitPhase waits until n attempts that started in the current phase have completed.
func (p *posters) waitPhase(ctx context.Context, n int) error {
	ph := p.phase.Load()
	return p.waitFor(ctx, fmt.Sprintf("%d attempts in phase %d", n, ph), func(_ int, done map[int32]int) bool { return done[ph] >= n })
}

// stop lets every request in flight finish, and returns all attempts.
func (p *posters) stop() []attempt {
	p.stopping.Store(true)
	p.wg.Wait()
	p.client.CloseIdleConnections()
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]attempt(nil), p.all...)
}

// readDLQ returns the entries of a filedlq directory, opened read-only.
func readDLQ(t *testing.T, ctx context.Context, dir string) []dlq.Entry {
	t.Helper()
	q, err := filedlq.Open(dir, filedlq.WithReadOnly())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	defer q.Close()
	var out []dlq.Entry
	require.NoError(t, q.List(ctx, func(e dlq.Entry) error { out = append(out, e); return nil }))
	return out
}
