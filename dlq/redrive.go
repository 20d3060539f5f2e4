package dlq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// Outcome says what a redrive did with one selected entry.
type Outcome string

const (
	// OutcomeRedriven: the sink took the event again; the entry is removed (or, when the queue
	// cannot remove entries, counted in Report.Redriven but not Report.Removed).
	OutcomeRedriven Outcome = "redriven"
	// OutcomeFailed: the sink refused the event again; the entry stays as it was.
	OutcomeFailed Outcome = "failed"
	// OutcomeSkipped: no sink of the entry's name was given; the entry stays as it was.
	OutcomeSkipped Outcome = "skipped"
	// OutcomeConflict: another entry in the queue, of another sink or another event, has the
	// same ID, and a removal by ID would take it away too; the entry is not sent and stays as it
	// was.
	OutcomeConflict Outcome = "conflict"
)

// ErrNoSink is the error of an OutcomeSkipped result: the sinks passed to Redrive have none of the
// entry's name.
var ErrNoSink = errors.New("dlq: no sink of that name")

// ErrIDConflict is the error of an OutcomeConflict result: entries of different sinks or events
// share the entry's ID, so that removing one would remove the others.
var ErrIDConflict = errors.New("dlq: entries of different sinks or events share this ID")

// Result is what Redrive did with one entry; a WithOnResult hook receives it.
type Result struct {
	Entry   Entry
	Outcome Outcome
	// Err is why the entry stays: the sink's error (for a Retrier, the *retry.Error), ErrNoSink or
	// ErrIDConflict. It is nil for OutcomeRedriven.
	Err error
}

// Report counts what a Redrive did.
type Report struct {
	// Selected counts the entries the filter chose (all of them for a nil filter).
	Selected int
	// Redriven counts the entries their sink took again.
	Redriven int
	// Removed counts the redriven entries removed from the queue. It is smaller than Redriven
	// only when removal failed or is unsupported, when an entry with a redriven entry's ID was
	// put while the redrive ran and listed by it, or when a redrive that stopped early had
	// delivered an entry with copies (see Redrive); those entries will be sent again by the next
	// redrive.
	Removed int
	// Failed counts the entries their sink refused again; they stay in the queue unchanged.
	Failed int
	// Skipped counts the entries whose sink was not given; they stay in the queue unchanged.
	Skipped int
	// Copies counts further entries that are the same as one already selected (the same ID, Sink
	// and Event.ID): the same entry written twice by a Put retried after an unclear failure. A
	// copy is not sent again; it shares the outcome of the entry selected first (removed with it,
	// or kept with it), and is not in Selected.
	Copies int
	// Conflicts counts the selected entries that were neither sent nor removed because an entry
	// of another sink or another event has the same ID (OutcomeConflict). They stay in the queue
	// unchanged, and are in Selected.
	Conflicts int
}

// Option configures Redrive.
type Option interface{ apply(*redriveConfig) }

type redriveConfig struct {
	concurrency   int
	retrier       *retry.Retrier
	onResult      func(Result)
	deleteBatch   int
	removeTimeout time.Duration
	// Tests replace the hashes of entries to make them collide.
	keyHook func(id string) uint64
	fpHook  func(id, sink, event string) uint64
}

type optionFunc func(*redriveConfig)

func (f optionFunc) apply(c *redriveConfig) { f(c) }

// WithConcurrency sets how many entries are re-sent at once; n must be at least 1. With more than
// one, entries may reach their sinks out of queue order. The default is 1.
func WithConcurrency(n int) Option {
	return optionFunc(func(c *redriveConfig) { c.concurrency = n })
}

// WithRetrier retries each re-send with r before counting it failed. The event's original age
// budget is not applied: a redrive is a fresh delivery. The default is a single attempt per entry.
func WithRetrier(r *retry.Retrier) Option {
	return optionFunc(func(c *redriveConfig) { c.retrier = r })
}

// WithOnResult sets a hook called once per selected entry with what happened to it, for progress
// output. Calls never overlap, even with WithConcurrency, and must not block for long. The default
// is no hook.
func WithOnResult(f func(Result)) Option {
	return optionFunc(func(c *redriveConfig) { c.onResult = f })
}

// WithDeleteBatch sets how many redriven entries are removed with one Reader.Delete call; n must
// be at least 1. Larger batches are cheaper for queues that rewrite files; smaller ones leave fewer
// entries to be sent twice if the process dies during the redrive. The default is 100.
func WithDeleteBatch(n int) Option {
	return optionFunc(func(c *redriveConfig) { c.deleteBatch = n })
}

// ErrInvalidOption is wrapped by the error Redrive returns for an option it cannot use.
var ErrInvalidOption = errors.New("dlq: invalid option")

// Redrive re-sends the entries of r that filter selects (every entry for a nil filter), each to the
// sink it failed on and to no other: sinks[entry.Sink]. An entry the sink takes is removed from
// the queue; an entry it refuses stays unchanged (its error is reported through WithOnResult), and
// so does an entry whose sink is missing from sinks, which is counted as skipped rather than
// stopping the redrive.
//
// Redrive returns the counts and nil when it went through the whole queue and every selected entry
// has an outcome. It stops early with the counts so far and an error when ctx ends (context.Cause
// of ctx, even when only the last entries' sends were cut short, which leaves them in no count),
// when List fails or when Delete fails. When the
// Reader cannot remove entries (ErrUnsupported) it redrives everything and then returns an error
// wrapping ErrUnsupported, since those entries would be sent again by the next redrive.
//
// Entries are removed by ID, so Redrive reads the queue twice: first to learn which IDs name more
// than one entry, then to redrive. Two entries with the same ID, Sink and Event.ID are one entry
// written twice (a Put retried after an unclear failure): the first one listed is sent, and its
// copies follow its outcome without being sent again (Report.Copies). Entries that share an ID
// but differ in Sink or Event.ID can only come from a caller that set Entry.ID itself (Put assigns
// unique IDs): a removal would take them all, delivered or not, so none of them is sent or removed,
// and each selected one is reported with OutcomeConflict and ErrIDConflict (Report.Conflicts). To
// redrive them, put them again with empty IDs and delete the shared one. The removal of an entry
// with copies waits until the whole queue has been listed, and does not happen if the redrive
// stops before.
//
// The check covers the entries that Redrive lists: those in the queue when it starts, and those
// put during the redrive that its second List visits. For such an entry with the ID of one listed
// before it (even a copy of it), the earlier entry's removal is held back if it has not happened
// yet, so that entry stays to be sent again, and the new one is a conflict. An entry put during
// the redrive that the second List does not visit is not checked, and the removal of its ID takes
// it too, unsent: a Reader may list only what its queue held when List began (filedlq and
// dlqtest.Memory do), and no List visits an entry put after it returned. IDs from NewID never
// name an earlier entry; a caller that sets Entry.ID itself must therefore give an ID to one
// entry only (or to its copies: the same Sink and Event.ID), never to entries of two sinks or
// two events. The conflicts Redrive reports catch such IDs among the entries it lists; they
// cannot catch every one.
//
// Redrive keeps no text of most entries it reads, only two 64-bit hashes, seeded anew for each
// call: one of the ID, and one of the ID, Sink and Event.ID. That is about 20 to 40 bytes per
// entry in the queue, whatever the filter selects. Text is kept only for delivered entries
// waiting to be removed (their exact IDs) and for IDs the first pass found more than once with
// the same hashes, which the second pass compares exactly to tell copies from conflicts. Hashes
// that collide can therefore only make Redrive more careful: entries kept unsent and reported as
// conflicts, or a delivered entry kept, to be sent again by the next redrive. No collision makes
// it remove an entry it did not deliver.
//
// Removal follows delivery, so a redrive stopped between the two (a crash, a failed Delete) leaves
// delivered entries in the queue: at-least-once, as everywhere in fanbridge. Removal of the last
// batch runs even when ctx has been cancelled, for at most 30 seconds, so that a stopped redrive
// does not leave behind what it delivered.
func Redrive(ctx context.Context, r Reader, sinks map[string]sink.Sink, filter func(Entry) bool, opts ...Option) (Report, error) {
	cfg := redriveConfig{concurrency: 1, deleteBatch: 100, removeTimeout: 30 * time.Second}
	for _, o := range opts {
		o.apply(&cfg)
	}
	switch {
	case r == nil:
		return Report{}, fmt.Errorf("%w: nil Reader", ErrInvalidOption)
	case cfg.concurrency < 1:
		return Report{}, fmt.Errorf("%w: concurrency %d, want at least 1", ErrInvalidOption, cfg.concurrency)
	case cfg.deleteBatch < 1:
		return Report{}, fmt.Errorf("%w: delete batch %d, want at least 1", ErrInvalidOption, cfg.deleteBatch)
	}
	rd := &redrive{cfg: &cfg, r: r, ids: make(map[uint64]idState), copies: make(map[uint64]exactID), keySeed: maphash.MakeSeed()}
	rd.fp.SetSeed(maphash.MakeSeed())
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rd.cancel = cancel

	// The first pass learns which IDs entries of different sinks or events share, before
	// anything is sent or removed: a removal of an ID removes every entry that has it.
	if err := r.List(ctx, func(e Entry) error {
		rd.mu.Lock()
		defer rd.mu.Unlock()
		rd.note(&e, false)
		return nil
	}); err != nil {
		return Report{}, fmt.Errorf("dlq: redrive: %w", err)
	}

	work := make(chan job)
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Go(func() {
			for j := range work {
				rd.deliver(ctx, j)
			}
		})
	}
	listErr := r.List(ctx, func(e Entry) error {
		// Every entry is noted, selected or not, since an entry put after the first pass may
		// share an ID whose removal is still pending.
		rd.mu.Lock()
		key, st := rd.note(&e, true)
		rd.mu.Unlock()
		if filter != nil && !filter(e) {
			return nil
		}
		rd.mu.Lock()
		switch {
		case st&stateShared != 0:
			rd.rep.Selected++
			rd.mu.Unlock()
			rd.finish(ctx, Result{Entry: e, Outcome: OutcomeConflict, Err: fmt.Errorf("%w: %q", ErrIDConflict, e.ID)})
			return nil
		case st&stateSelected != 0:
			rd.rep.Copies++
			rd.mu.Unlock()
			return nil
		}
		rd.ids[key] = st | stateSelected
		rd.rep.Selected++
		rd.mu.Unlock()
		s := sinks[e.Sink]
		if s == nil {
			rd.finish(ctx, Result{Entry: e, Outcome: OutcomeSkipped, Err: fmt.Errorf("%w: %q", ErrNoSink, e.Sink)})
			return nil
		}
		select {
		case work <- job{e: e, s: s}:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(work)
	wg.Wait()
	rd.mu.Lock()
	rd.listed = listErr == nil
	rd.mu.Unlock()

	// The last removals run even after a cancellation, so that what was delivered is not sent
	// twice; they get a bounded context of their own.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.removeTimeout)
	defer rcancel()
	rd.flush(rctx, true)

	rd.mu.Lock()
	defer rd.mu.Unlock()
	// An entry whose send the cancellation cut short is in no count; a List that had already
	// handed over its last entry returns nil, so that is the only sign the redrive did not finish.
	unsent := rd.rep.Selected - rd.rep.Redriven - rd.rep.Failed - rd.rep.Skipped - rd.rep.Conflicts
	switch {
	case rd.err != nil:
		return rd.rep, rd.err
	case listErr != nil:
		return rd.rep, fmt.Errorf("dlq: redrive: %w", listErr)
	case unsent > 0:
		cause := context.Cause(ctx)
		if cause == nil {
			cause = context.Canceled
		}
		return rd.rep, fmt.Errorf("dlq: redrive: stopped before %d selected entries were sent: %w", unsent, cause)
	case rd.unsupported:
		return rd.rep, fmt.Errorf("dlq: redrive: %d redriven entries could not be removed: %w", rd.rep.Redriven-rd.rep.Removed, ErrUnsupported)
	}
	return rd.rep, nil
}

type job struct {
	e Entry
	s sink.Sink
}

// redrive is the shared state of one Redrive call.
type redrive struct {
	cfg    *redriveConfig
	r      Reader
	cancel context.CancelCauseFunc

	mu          sync.Mutex // guards everything below and serialises onResult
	rep         Report
	pending     []string           // IDs of redriven entries not yet removed, exact
	deferred    []string           // the same, for keys with copies: removed once all are listed
	listed      bool               // the second pass listed the whole queue
	ids         map[uint64]idState // by idKey, every ID listed so far
	copies      map[uint64]exactID // by idKey, for keys with copies: the first entry listed again
	keySeed     maphash.Seed
	fp          maphash.Hash // with a seed of its own, for fingerprint
	unsupported bool
	err         error // the first removal error, which stops the redrive

	deleteMu sync.Mutex // one Delete at a time, in the order batches filled up
}

// idState is what a redrive knows of the entries whose IDs have one idKey: a 60-bit fingerprint
// of the ID, Sink and Event.ID of the first of them listed, and four flags in the low bits.
// Sixteen bytes an entry with its key, against the hundreds the strings would take, let a
// redrive of one entry read a queue of millions.
type idState uint64

const (
	stateShared   idState = 1 << iota // entries of different IDs, sinks or events have the key
	stateSelected                     // an entry with the key was selected for the redrive
	stateCopies                       // the first pass listed the key again, with one fingerprint
	stateListed                       // the second pass has listed an entry with the key
	stateFlags    = stateShared | stateSelected | stateCopies | stateListed
)

// exactID is what tells entries apart, kept as text only for keys with copies.
type exactID struct{ id, sink, event string }

// idKey and fingerprint hash an entry with seeds of their own Redrive call, which an entry's
// author cannot predict.
func (rd *redrive) idKey(id string) uint64 {
	if rd.cfg.keyHook != nil {
		return rd.cfg.keyHook(id)
	}
	return maphash.String(rd.keySeed, id)
}

func (rd *redrive) fingerprint(id, sink, event string) idState {
	if rd.cfg.fpHook != nil {
		return idState(rd.cfg.fpHook(id, sink, event)) &^ stateFlags
	}
	h := &rd.fp
	h.Reset()
	// Lengths first, so that no two (ID, sink, event) triples write the same bytes.
	var n [24]byte
	binary.LittleEndian.PutUint64(n[0:], uint64(len(id)))
	binary.LittleEndian.PutUint64(n[8:], uint64(len(sink)))
	binary.LittleEndian.PutUint64(n[16:], uint64(len(event)))
	_, _ = h.Write(n[:])
	_, _ = h.WriteString(id)
	_, _ = h.WriteString(sink)
	_, _ = h.WriteString(event)
	return idState(h.Sum64()) &^ stateFlags
}

// note records e, listed by the first or the second pass, under its ID's key and returns what
// is known of the key. rd.mu must be held.
//
// Hashes can only make entries look alike, so no answer rests on hashes being equal alone:
//   - A second entry with a key in the first pass is marked shared when its fingerprint differs,
//     and as a copy candidate (stateCopies) when it is the same. The second pass keeps the ID,
//     sink and event of the first entry it lists with a candidate key, and compares the later
//     ones to it exactly: only equal ones are copies, any other marks the key shared. Entries
//     of such a key are removed only once the second pass has listed the whole queue, so that
//     a difference found late holds the removal back instead of coming after it.
//   - An entry that the second pass lists with a key it has already listed, when the key is no
//     copy candidate, was put during the redrive: the key is marked shared, even for a true
//     copy, since there is nothing exact to compare it with.
//
// So a collision of keys, of fingerprints or of both gives at worst a false conflict: entries
// kept unsent and reported, or a delivered entry's removal held back, to be sent again.
func (rd *redrive) note(e *Entry, second bool) (uint64, idState) {
	key := rd.idKey(e.ID)
	fp := rd.fingerprint(e.ID, e.Sink, e.Event.ID)
	st, ok := rd.ids[key]
	same := st&^stateFlags == fp
	switch {
	case !ok:
		st = fp
		if second {
			st |= stateListed
		}
	case st&stateShared != 0:
		return key, st
	case !second && same:
		st |= stateCopies
	case !second:
		st |= stateShared
	case st&stateListed == 0:
		st |= stateListed
		switch {
		case !same:
			st |= stateShared
		case st&stateCopies != 0:
			rd.copies[key] = exactID{e.ID, e.Sink, e.Event.ID}
		}
	case st&stateCopies == 0 || rd.copies[key] != (exactID{e.ID, e.Sink, e.Event.ID}):
		st |= stateShared
	}
	rd.ids[key] = st
	return key, st
}

func (rd *redrive) deliver(ctx context.Context, j job) {
	send := func(ctx context.Context) error { return j.s.Send(ctx, &j.e.Event) }
	var err error
	if rd.cfg.retrier != nil {
		err = rd.cfg.retrier.Do(ctx, send)
	} else {
		err = send(ctx)
	}
	if err != nil && ctx.Err() != nil {
		// Stopped by the redrive's own cancellation: not the sink's failure, and the entry stays.
		return
	}
	if err != nil {
		rd.finish(ctx, Result{Entry: j.e, Outcome: OutcomeFailed, Err: err})
		return
	}
	rd.finish(ctx, Result{Entry: j.e, Outcome: OutcomeRedriven})
}

// finish counts a result, reports it, and removes a full batch of redriven entries.
func (rd *redrive) finish(ctx context.Context, res Result) {
	rd.mu.Lock()
	switch res.Outcome {
	case OutcomeRedriven:
		rd.rep.Redriven++
		if rd.ids[rd.idKey(res.Entry.ID)]&stateCopies != 0 {
			rd.deferred = append(rd.deferred, res.Entry.ID)
		} else {
			rd.pending = append(rd.pending, res.Entry.ID)
		}
	case OutcomeFailed:
		rd.rep.Failed++
	case OutcomeSkipped:
		rd.rep.Skipped++
	case OutcomeConflict:
		rd.rep.Conflicts++
	}
	if rd.cfg.onResult != nil {
		rd.cfg.onResult(res)
	}
	full := len(rd.pending) >= rd.cfg.deleteBatch
	rd.mu.Unlock()
	if full {
		rd.flush(ctx, false)
	}
}

// flush removes the pending redriven entries: a full batch, or everything when final.
func (rd *redrive) flush(ctx context.Context, final bool) {
	rd.deleteMu.Lock()
	defer rd.deleteMu.Unlock()
	rd.mu.Lock()
	if final {
		// Once every entry has been listed, what is known of the keys with copies is exact;
		// before, their removal is held back, since a namesake may not have been seen yet.
		if rd.listed {
			rd.pending = append(rd.pending, rd.deferred...)
		}
		rd.deferred = nil
	}
	if rd.unsupported || rd.err != nil || len(rd.pending) == 0 || (!final && len(rd.pending) < rd.cfg.deleteBatch) {
		rd.mu.Unlock()
		return
	}
	// An ID found shared after its entry was delivered (an entry put during the redrive, or a
	// copy found to differ) is held back: its removal would take the other entry too. That entry
	// stays, to be sent again by the next redrive.
	ids := make([]string, 0, len(rd.pending))
	for _, id := range rd.pending {
		if rd.ids[rd.idKey(id)]&stateShared == 0 {
			ids = append(ids, id)
		}
	}
	rd.pending = nil
	rd.mu.Unlock()
	if len(ids) == 0 {
		return
	}

	err := rd.r.Delete(ctx, ids...)

	rd.mu.Lock()
	defer rd.mu.Unlock()
	switch {
	case err == nil:
		rd.rep.Removed += len(ids)
	case errors.Is(err, ErrUnsupported):
		rd.unsupported = true
	case ctx.Err() != nil && !final:
		// The redrive is stopping; the final removal, which outlives the cancellation, retries them.
		rd.pending = append(ids, rd.pending...)
	default:
		rd.err = fmt.Errorf("dlq: redrive: removing %d redriven entries: %w", len(ids), err)
		rd.cancel(rd.err)
	}
}
