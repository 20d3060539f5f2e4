package filedlq

import (
	"context"
	"errors"
	"fmt"

	"github.com/fanbridge/fanbridge/dlq"
)

// startSyncer starts the goroutine that fsyncs the active segment on a timer under SyncInterval.
// Under SyncAlways the Puts fsync themselves (see waitSynced).
func (q *Queue) startSyncer() {
	s := &q.sy
	s.quit = make(chan struct{})
	s.exited = make(chan struct{})
	if q.cfg.sync.mode == syncInterval {
		go q.syncOnTimer()
		return
	}
	close(s.exited)
}

func (q *Queue) syncOnTimer() {
	s := &q.sy
	defer close(s.exited)
	for {
		t := q.cfg.clock.NewTimer(q.cfg.sync.interval)
		select {
		case <-t.C():
			q.syncRound()
		case <-s.quit:
			t.Stop()
			return
		}
	}
}

// syncRound fsyncs the active segment if lines were written since the last fsync, and wakes the
// Puts it made durable.
func (q *Queue) syncRound() {
	q.fileMu.Lock()
	defer q.fileMu.Unlock()
	if q.active == nil {
		// Closed: Close has made durable what it could; nothing more will be.
		q.sy.mu.Lock()
		if !q.sy.closed {
			q.sy.closed = true
			q.sy.wakeLocked()
		}
		q.sy.mu.Unlock()
		return
	}
	// Every line counted here was written to the active file: lines are counted after their
	// write, and a rotation, which would move later lines elsewhere, needs fileMu.
	target := q.written.Load()
	q.sy.mu.Lock()
	idle := target <= q.sy.synced || q.sy.err != nil
	q.sy.mu.Unlock()
	if idle {
		return
	}
	q.syncs.Add(1)
	if err := q.syncActive(); err != nil {
		q.failSync(err)
		return
	}
	q.markSynced(target)
}

// markSynced records that the first n lines are durable and wakes the Puts waiting for them.
func (q *Queue) markSynced(n uint64) {
	s := &q.sy
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > s.synced {
		s.synced = n
		s.wakeLocked()
	}
}

// failSync records a failed fsync. It is final: after a failed fsync the kernel may have dropped
// the dirty pages, so a later fsync that succeeds proves nothing about earlier lines.
func (q *Queue) failSync(err error) {
	s := &q.sy
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		s.wakeLocked()
		q.cfg.logger.Error("filedlq: fsync failed; the queue refuses further entries until reopened", "dir", q.dir, "err", err)
	}
	s.mu.Unlock()
}

// syncErr returns the fsync failure that broke the queue, if any.
func (q *Queue) syncErr() error {
	q.sy.mu.Lock()
	defer q.sy.mu.Unlock()
	return q.sy.err
}

// waitSynced returns once line seq is durable, or with an error when the fsync failed, the queue
// was closed without making it durable, or ctx ended.
//
// Group commit: a Put that finds no fsync running starts one, covering every line written so far;
// Puts that find one running wait for it and, if their line came too late for it, the first of
// them to wake starts the next. Concurrent Puts thus share fsyncs, and no goroutine lingers when
// no Put waits.
func (q *Queue) waitSynced(ctx context.Context, seq uint64) error {
	s := &q.sy
	for {
		s.mu.Lock()
		switch {
		case s.synced >= seq:
			s.mu.Unlock()
			return nil
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return fmt.Errorf("filedlq: put: %w: fsync: %w", ErrBroken, err)
		case s.closed:
			s.mu.Unlock()
			return fmt.Errorf("filedlq: put: waiting for fsync: %w", dlq.ErrClosed)
		case !s.running:
			// Start the next round. It runs on a goroutine of its own so that this Put can
			// still give up when ctx ends: an fsync cannot be abandoned halfway.
			q.startSyncRoundLocked()
		}
		done := s.done
		s.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("filedlq: put: waiting for fsync: %w", ctx.Err())
		}
	}
}

// startSyncRound starts an fsync round on a goroutine of its own, unless one is running or the
// queue is closed.
func (q *Queue) startSyncRound() {
	q.sy.mu.Lock()
	defer q.sy.mu.Unlock()
	if !q.sy.running && !q.sy.closed {
		q.startSyncRoundLocked()
	}
}

// startSyncRoundLocked starts an fsync round on a goroutine of its own. The caller holds q.sy.mu
// and has seen no round running.
func (q *Queue) startSyncRoundLocked() {
	s := &q.sy
	s.running = true
	go func() {
		q.syncRound()
		s.mu.Lock()
		s.running = false
		s.wakeLocked()
		s.mu.Unlock()
	}()
}

// wakeLocked wakes every Put waiting in waitSynced. The caller holds s.mu.
func (s *syncState) wakeLocked() {
	close(s.done)
	s.done = make(chan struct{})
}

// Close stops the queue: later Puts fail with dlq.ErrClosed. It writes the entries Puts handed
// over when they gave up waiting for their turn and, under SyncAlways and SyncInterval, fsyncs
// what was written, so Puts still waiting return nil. It waits for a Delete that is rewriting a
// segment, and then releases the directory's lock. Close returns the error of that last fsync,
// or of its look at whether the active segment is still the file at its name (it fails when the
// segment was removed under the queue); a failure that broke the queue before was reported then,
// and Close does not report it again. Closing again returns nil.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	if q.cfg.readOnly {
		return nil
	}
	// A Delete rewriting an older segment holds segMu but not mu. Wait for it: once the lock is
	// released another writer may reuse the segment's temporary file, over which the rewrite
	// would then rename a copy it did not write. No later rewrite can start, since deleteFrom
	// takes segMu under mu and checks closed first.
	q.segMu.Lock()
	q.segMu.Unlock()
	// Entries handed over by Puts that gave up waiting for their turn are written now, to be
	// made durable with the rest; no more are taken.
	q.late.mu.Lock()
	q.late.shut = true
	q.late.mu.Unlock()
	var lateErr error
	if q.broken == nil && q.syncErr() == nil {
		_, lateErr = q.writeLateLocked()
	} else {
		lateErr = errors.New("the queue is broken")
	}
	q.late.mu.Lock()
	if n := len(q.late.lines); n > 0 {
		q.cfg.logger.Error("filedlq: entries whose Puts gave up waiting to write are lost", "dir", q.dir, "entries", n, "err", lateErr)
	}
	q.late.mu.Unlock()
	close(q.sy.quit)
	<-q.sy.exited

	q.fileMu.Lock()
	var err error
	if q.cfg.sync.mode != syncNever && q.broken == nil && q.syncErr() == nil {
		target := q.written.Load()
		q.sy.mu.Lock()
		pending := target > q.sy.synced && q.sy.err == nil
		q.sy.mu.Unlock()
		if pending {
			q.syncs.Add(1)
			if err = q.syncActive(); err != nil {
				q.failSync(err)
			} else {
				q.markSynced(target)
			}
		} else if err = q.checkActiveName(); err != nil {
			// Every line was fsynced, but the file holding them is no longer the segment.
			q.failSync(err)
		}
	}
	if cerr := q.active.Close(); err == nil {
		err = cerr
	}
	q.active = nil
	q.fileMu.Unlock()
	q.sy.mu.Lock()
	q.sy.closed = true
	q.sy.wakeLocked()
	q.sy.mu.Unlock()

	if cerr := q.lock.Close(); err == nil { // closing the file releases the flock
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("filedlq: close: %w", err)
	}
	return nil
}

// Stats are counters of a queue since Open.
type Stats struct {
	// Puts counts entries appended; Syncs the fsyncs of segment files (SyncAlways makes fewer
	// than Puts when Puts run concurrently); Rotations the segments started.
	Puts, Syncs, Rotations uint64
	// Dropped counts segments removed by the retention, with their entries.
	Dropped uint64
	// Damaged counts pieces of segments reported as damage.
	Damaged uint64
	// Segments is the number of segment files.
	Segments int
}

// Stats returns the queue's counters.
func (q *Queue) Stats() Stats {
	q.segMu.Lock()
	n := len(q.segs)
	q.segMu.Unlock()
	return Stats{
		Puts: q.written.Load(), Syncs: q.syncs.Load(), Rotations: q.rotations.Load(),
		Dropped: q.dropped.Load(), Damaged: q.damaged.Load(), Segments: n,
	}
}
