package notifications

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/retry"
)

// pingMessage is the client text Genesys answers with a pong.
var pingMessage = []byte(`{"message":"ping"}`)

const (
	replacedSoonMsg = "notifications: channel replaced soon after it was subscribed; waiting before opening another"
	droppedSoonMsg  = "notifications: subscriptions dropped again soon after they were restored; waiting before subscribing again"
)

// lane keeps one set of up to 1,000 topics subscribed: one channel at a time, two while a channel
// is being replaced, never more.
type lane struct {
	s       *Source
	idx     int
	topics  []string
	events  chan<- *fanbridge.Event
	pushCtx context.Context // ends when the dispatch loop stops taking events
	// fail reports the error that ends Run and ends run's context; later calls do nothing. Nil
	// in tests that build a lane alone.
	fail func(error)
}

// conn is one channel and its socket, read by its own goroutine.
type conn struct {
	ch     *genesys.Channel
	claim  *claim // the lane's hold on ch in the source's account
	ws     *websocket.Conn
	opened time.Time
	// subscribed is when the lane's topics were subscribed, on the source's clock.
	subscribed time.Time
	cancel     context.CancelFunc
	done       chan struct{}  // closed when the reader has returned
	pinger     sync.WaitGroup // the ping goroutine, when there is one

	closing     chan struct{} // closed when Genesys asks us to move to a new channel
	closingOnce sync.Once
	closeReason string // set before closing is closed
	// unsubscribed receives when Genesys says it dropped the channel's subscriptions.
	unsubscribed chan struct{}

	reason string // why the reader returned on its own; read after done
	err    error

	// The reader's progress, which the retirement of a replaced channel follows (see retire).
	mu       sync.Mutex
	reading  bool // the reader waits in Read for the next message
	blocked  bool // the reader holds an event and waits for room in the buffer
	retiring bool
	// While retiring: since is when the reader's current wait in Read began, idle how long it
	// has waited in Read since the retirement began or it was last blocked, and stalled whether
	// it was blocked at any time.
	since   time.Time
	idle    time.Duration
	stalled bool
	wake    chan struct{} // the reader starts waiting in Read or for room, while retiring
}

// readStarts records that the reader waits in Read.
func (c *conn) readStarts() {
	c.mu.Lock()
	c.reading = true
	if c.retiring {
		c.since = time.Now()
		c.wakeLocked()
	}
	c.mu.Unlock()
}

// wakeLocked tells the retirement that the reader's state changed; one wake pending is enough.
func (c *conn) wakeLocked() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// readEnds records that Read has returned.
func (c *conn) readEnds() {
	c.mu.Lock()
	c.reading = false
	if c.retiring {
		c.idle += time.Since(c.since)
	}
	c.mu.Unlock()
}

// setBlocked records whether the reader waits for room in the buffer. While it does, messages may
// wait unread in the socket, and those already on their way may wait behind them on Genesys'
// side: the idle time counted for the retirement starts again.
func (c *conn) setBlocked(b bool) {
	c.mu.Lock()
	c.blocked = b
	if b && c.retiring {
		c.idle, c.stalled = 0, true
		c.wakeLocked() // the retirement logs a channel kept open behind the dispatcher
	}
	c.mu.Unlock()
}

// startRetiring starts counting the reader's idle time for the retirement.
func (c *conn) startRetiring() {
	c.mu.Lock()
	c.retiring, c.idle, c.stalled = true, 0, c.blocked
	if c.reading {
		c.since = time.Now()
	}
	c.mu.Unlock()
}

// idleLeft returns how much longer the reader must wait in Read before the socket is read to the
// end (see retire), whether it waits in Read now, and whether it was blocked during the
// retirement.
func (c *conn) idleLeft(overlap time.Duration) (left time.Duration, reading, stalled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	idle := c.idle
	if c.reading {
		idle += time.Since(c.since)
	}
	return overlap - idle, c.reading, c.stalled
}

// isBlocked reports whether the reader waits for room in the buffer.
func (c *conn) isBlocked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked
}

// signal asks the lane to replace the channel, for reason.
func (c *conn) signal(reason string) {
	c.closingOnce.Do(func() {
		c.closeReason = reason
		close(c.closing)
	})
}

// close drops the socket, waits for its reader, which first hands over an event it holds, and
// gives the channel back to the source's account.
func (c *conn) close() {
	c.shut()
	c.claim.release()
}

// shut drops the socket and waits for its reader and its pinger; the lane keeps its claim on
// the channel.
func (c *conn) shut() {
	c.cancel()
	_ = c.ws.CloseNow()
	<-c.done
	c.pinger.Wait()
}

// run keeps the lane's topics subscribed until ctx ends. It returns nil then, or the error that
// made opening a channel impossible, which it reports with fail before it closes its channels.
func (l *lane) run(ctx context.Context) (err error) {
	cur, err := l.connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var retiring sync.WaitGroup
	defer func() {
		// Reported first, the error ends ctx: the retirements under way end at once, as at
		// shutdown, and the drain timeout starts. Otherwise Run would report it only once
		// every replaced socket had been read to the end or had expired, and a reader waiting
		// for a dispatcher stuck until the shutdown would never return.
		if err != nil && l.fail != nil {
			l.fail(err)
		}
		l.closeAtShutdown(cur)
		retiring.Wait()
	}()
	var retired chan struct{} // closed once the last channel replaced is closed or has expired
	// quick counts the channels in a row replaced within the heartbeat timeout of being
	// subscribed; see holdOff.
	quick := 0
	// restored is when the lane last subscribed cur's topics again after Genesys dropped them,
	// and dropped counts the drops in a row that came within the heartbeat timeout of it.
	var restored time.Time
	dropped := 0
	for {
		timer := time.NewTimer(l.rotateIn(cur))
		var reason string
		var cause error
		failed := false
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-cur.done:
			reason, cause = cur.reason, cur.err // the reader has returned: safe to read
			failed = true
		case <-cur.closing:
			reason = cur.closeReason
		case <-cur.unsubscribed:
			// A notice that keeps coming back would otherwise cost a subscription request of up
			// to 1,000 topics each time: the same backoff as for channels replaced soon.
			if !restored.IsZero() && l.s.cfg.clock.Now().Sub(restored) < l.s.cfg.heartbeatTimeout {
				dropped++
			} else {
				dropped = 0
			}
			var at time.Time
			at, reason, failed = l.restore(ctx, cur, timer.C, l.backoff(ctx, dropped, droppedSoonMsg))
			if ctx.Err() != nil {
				timer.Stop()
				return nil
			}
			if failed {
				cause = cur.err
			}
			if reason == "" {
				restored = at
				timer.Stop()
				continue
			}
		case <-timer.C:
			reason = reasonExpiry
		}
		timer.Stop()
		if ctx.Err() != nil {
			return nil
		}
		l.s.m.reconnect(reason)
		attrs := []slog.Attr{slog.Int("lane", l.idx), slog.String("channel", cur.ch.ID), slog.String("reason", reason)}
		if cause != nil {
			attrs = append(attrs, slog.String("error", cause.Error()))
		}
		l.s.log.LogAttrs(ctx, slog.LevelInfo, "notifications: replacing channel", attrs...)
		// An expiry counts too: a channel whose expiry comes that soon (a bad answer) would
		// otherwise be replaced by another like it again and again.
		if l.s.cfg.clock.Now().Sub(cur.subscribed) < l.s.cfg.heartbeatTimeout {
			quick++
		} else {
			quick = 0
		}
		// A lane never holds more than two channels, which is what lets MaxChannels lanes replace
		// theirs all at once within Genesys' limit: a failed channel is dropped before its
		// successor is opened, and a live one waits until the channel it replaced is closed or
		// has expired (see retire), or until its own socket fails.
		stopWatch := func() {}
		if failed {
			cur.close()
		} else {
			stopWatch = closeWhenDead(cur)
			if retired != nil {
				select {
				case <-retired:
				case <-cur.done:
					// Genesys closes every socket about a minute after a maintenance notice, the
					// replaced one's too, which may still have a backlog to read behind a slow
					// dispatcher. No channel of the lane receives new events now: its successor
					// is opened at once, as for a failed channel, beside the channel still being
					// read, which keeps its place until its retirement ends.
					stopWatch()
					stopWatch = func() {}
					cur.close()
					l.s.log.LogAttrs(ctx, slog.LevelInfo, "notifications: the channel to replace failed while a channel replaced earlier was still being read; opening its successor now",
						slog.Int("lane", l.idx), slog.String("channel", cur.ch.ID))
				case <-ctx.Done():
					stopWatch()
					return nil
				}
			}
		}
		l.holdOff(ctx, quick, replacedSoonMsg)
		next, err := l.connect(ctx)
		stopWatch()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// The new channel is subscribed before the old one is dropped, so there is no gap.
		old := cur
		cur = next
		restored, dropped = time.Time{}, 0
		// done closes once old and every channel retired before it no longer count among the
		// lane's channels (see retire): a failed channel's retirement ends at once, and must not
		// hide an earlier one still being read.
		prev := retired
		done := make(chan struct{})
		retired = done
		freed := make(chan struct{})
		retiring.Add(2)
		go func() {
			defer retiring.Done()
			l.retire(ctx, old, freed)
		}()
		go func() {
			defer retiring.Done()
			defer close(done)
			for _, c := range []chan struct{}{freed, prev} {
				if c == nil {
					continue
				}
				select {
				case <-c:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
}

// restore subscribes the lane's topics again on cur, whose subscriptions Genesys dropped, once
// wait is over (see pause), and returns an empty reason and when the request was answered once it
// has, or when ctx ends. Genesys
// replaces a channel's whole subscription set on each request, so this restores it without a new
// channel: replacing the channel could have the lane wait for a place among the 20 (see account)
// while its topics send nothing. A request refused for now (a 429, or an answer with Retry-After,
// once the client's own retries are spent) is sent again after the wait asked for, up to the
// reconnect policy's MaxRetryAfter and never less than its InitialInterval: a new channel would
// cost a creation against the same rate limit and one of the 20 places. Otherwise it returns the
// reason to replace cur: the one pause or subscribeAgain returned, or reasonUnsubscribed when the
// request failed.
func (l *lane) restore(ctx context.Context, cur *conn, expiry <-chan time.Time, wait time.Duration) (at time.Time, reason string, failed bool) {
	for {
		if reason, failed = l.pause(ctx, cur, expiry, wait); reason != "" || ctx.Err() != nil {
			return time.Time{}, reason, failed
		}
		// The request below restores every subscription: notices that came during the wait are
		// answered by it.
		select {
		case <-cur.unsubscribed:
		default:
		}
		reason, failed, err := l.subscribeAgain(ctx, cur, expiry)
		if reason != "" {
			return time.Time{}, reason, failed
		}
		switch {
		case err == nil:
			// The subscriptions hold from the answer on, as a channel's from its subscription
			// (see connect): the time is taken before the log line, so that nothing that follows
			// the line, however late the lane runs, moves the start of the hold.
			at = l.s.cfg.clock.Now()
			l.s.log.LogAttrs(ctx, slog.LevelInfo, "notifications: subscribed again after Genesys dropped the subscriptions",
				slog.Int("lane", l.idx), slog.String("channel", cur.ch.ID), slog.Int("topics", len(l.topics)))
			return at, "", false
		case ctx.Err() != nil:
			return time.Time{}, "", false
		}
		if d, ok := l.throttled(err); ok {
			wait = d
			l.s.log.LogAttrs(ctx, slog.LevelWarn, "notifications: subscribing again after Genesys dropped the subscriptions was refused for now; waiting before sending it again",
				slog.Int("lane", l.idx), slog.String("channel", cur.ch.ID), slog.Duration("wait", wait), slog.String("error", err.Error()))
			continue
		}
		l.s.log.LogAttrs(ctx, slog.LevelWarn, "notifications: subscribing again after Genesys dropped the subscriptions failed; replacing the channel",
			slog.Int("lane", l.idx), slog.String("channel", cur.ch.ID), slog.String("error", err.Error()))
		return time.Time{}, reasonUnsubscribed, false
	}
}

// subscribeAgain sends the request that restores cur's subscriptions. The genesys client waits
// out refusals on its own (a Retry-After of up to minutes, several attempts), so the request is
// cut short, and the reason to replace cur returned, as soon as cur's socket fails, Genesys
// announces it closes the socket, or cur reaches its replacement time: a minute after the notice
// the socket is gone, and waiting on would lose every event published until the request gave up.
func (l *lane) subscribeAgain(ctx context.Context, cur *conn, expiry <-chan time.Time) (reason string, failed bool, err error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-cur.done:
			reason, failed = cur.reason, true // the reader has returned: safe to read
		case <-cur.closing:
			reason = cur.closeReason
		case <-expiry:
			reason = reasonExpiry
		case <-stop:
			return
		}
		cancel()
	}()
	err = l.setSubscriptions(rctx, cur.claim, l.topics)
	close(stop)
	<-watched
	// Once the watch has seen cur's end (and taken the expiry's tick), cur is replaced whatever
	// the request's outcome.
	return reason, failed, err
}

// setSubscriptions replaces the subscriptions of the claimed channel with topics. Genesys may carry
// out such a request after its failure was seen, as it may a creation (see lateCreationGrace): one
// cut short by the lane once it had gone out, or given up on after a timeout, a 5xx or a broken
// connection. The genesys client sends a PUT again after such a failure, so even a success may
// leave an earlier copy behind. Carried out after another lane has connected the channel again, a
// removal would leave that lane's socket without subscriptions, and a subscription would replace
// them with topics of another lane; nothing would tell, and the lane's events would be lost until
// its channel was next replaced. So the claimed channel is held back (see account) when the
// request went out more than once, or went out once and did not come back answered: only a 2xx or
// a 4xx read in full settles it. A request that never went out (cut short before, or during the
// token request) holds nothing back, nor does a copy refused with a 401 that the client sent
// again with a new token: the genesys client counts neither (see genesys.WithSendCount).
func (l *lane) setSubscriptions(ctx context.Context, cl *claim, topics []string) error {
	sends := 0
	err := l.s.client.SetSubscriptions(genesys.WithSendCount(ctx, &sends), cl.channel().ID, topics)
	if sends > 1 || sends == 1 && err != nil && !refused(err) {
		at := time.Now()
		cl.holdBack(at)
		l.s.log.LogAttrs(ctx, slog.LevelDebug, "notifications: Genesys may still carry out a subscription request whose outcome is unclear; the channel is not connected again until then",
			slog.Int("lane", l.idx), slog.String("channel", cl.channel().ID), slog.Time("until", at.Add(l.s.account.grace)))
	}
	return err
}

// refused reports whether err is an answer of Genesys' with a 4xx status, read in full: Genesys
// did nothing with the request, and will not. A 4xx whose body was cut off is a transport error,
// and stays unclear.
func refused(err error) bool {
	var apiErr *genesys.APIError
	return errors.As(err, &apiErr) && apiErr.Status >= 400 && apiErr.Status <= 499
}

// throttled reports whether a subscription request was refused for now (a 429, with any wait,
// even none, or another answer with a Retry-After), and how long to wait before sending it again:
// the wait the answer asked for, capped by the reconnect policy's MaxRetryAfter, and never less
// than its first interval, even under a MaxRetryAfter below it, since the request carries up to
// 1,000 topics.
func (l *lane) throttled(err error) (time.Duration, bool) {
	d, ok := retry.RetryAfter(err)
	if !genesys.IsRateLimited(err) && !(ok && d > 0) {
		return 0, false
	}
	p := l.s.reconnect.Policy()
	return max(min(d, p.MaxRetryAfter), p.InitialInterval), true
}

// dialRetryAfter returns the wait the Retry-After header of a refused WebSocket handshake asks for
// (delay-seconds or an HTTP-date), and whether there is one: Genesys sends one with every 429.
func dialRetryAfter(resp *http.Response) (time.Duration, bool) {
	if resp == nil {
		return 0, false
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs < 0 || math.IsNaN(secs) {
			return 0, false
		}
		return time.Duration(min(secs, maxRetryAfterSeconds) * float64(time.Second)), true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(time.Until(at), 0), maxRetryAfterSeconds*time.Second), true
}

// maxRetryAfterSeconds bounds a Retry-After so that the conversion cannot overflow; the reconnect
// policy's MaxRetryAfter caps the wait far below it.
const maxRetryAfterSeconds = 30 * 24 * 60 * 60

// closeWhenDead closes c, giving its channel back to the source's account, as soon as its socket
// fails, until stop is called. A lane opening a successor for a channel that is still live keeps
// it in use meanwhile; should its socket fail then (Genesys closes every socket a minute after a
// maintenance notice), the channel must not stay in use while the lane waits for a place among
// the 20 (see account): it could be the one place that lane, or another, is waiting for.
func closeWhenDead(c *conn) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-c.done:
			c.close()
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// holdOff waits before a lane opens another channel when the last quick channels in a row were each
// replaced within the heartbeat timeout of being subscribed: a socket that a proxy closes at once,
// or a notice on every new socket, would otherwise have the lane create or connect a channel and
// subscribe up to 1,000 topics again and again, spending the organization's API rate limit. Each
// such channel counts as a failed attempt of the reconnect policy: the wait grows as the policy's
// interval does, from InitialInterval to MaxInterval, and starts again once a channel has lived
// longer than the heartbeat timeout. The same backoff comes before subscribing a channel's topics
// again when Genesys dropped them again within the heartbeat timeout of the last time (see pause).
// Only the policy's interval sets the wait: its attempt and age budgets say when to give up opening
// one channel, not how long to wait between channels that each opened, so a policy of one attempt,
// or an age budget shorter than the wait, must not make the wait vanish. It runs on the source's
// clock and ends early only with ctx.
func (l *lane) holdOff(ctx context.Context, quick int, msg string) {
	_ = retry.Sleep(ctx, l.s.cfg.clock, l.backoff(ctx, quick, msg)) // it ends early only with ctx
}

// pause waits d on the source's clock before the lane subscribes cur's topics again, and returns
// an empty reason then, or when ctx ends. It returns at once, with the reason to replace cur, when
// cur's socket fails (failed is then true), Genesys announces it closes the socket, or cur reaches
// its replacement time (expiry fires): cur is replaced anyway, and Genesys closes the socket
// about a minute after its notice, so the wait must not delay the replacement past that.
func (l *lane) pause(ctx context.Context, cur *conn, expiry <-chan time.Time, d time.Duration) (reason string, failed bool) {
	// The channel's own end comes first, even without a wait: a channel replaced anyway needs no
	// request.
	select {
	case <-cur.done:
		return cur.reason, true // the reader has returned: safe to read
	case <-cur.closing:
		return cur.closeReason, false
	case <-expiry:
		return reasonExpiry, false
	default:
	}
	if d <= 0 {
		return "", false
	}
	t := l.s.cfg.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return "", false
	case <-cur.done:
		return cur.reason, true
	case <-cur.closing:
		return cur.closeReason, false
	case <-expiry:
		return reasonExpiry, false
	case <-t.C():
		return "", false
	}
}

// backoff returns the wait after quick failures in a row (see holdOff), zero for none, and logs
// msg with it.
func (l *lane) backoff(ctx context.Context, quick int, msg string) time.Duration {
	if quick == 0 {
		return 0
	}
	wait := l.s.reconnect.Interval(quick)
	if l.s.reconnect.Policy().Jitter == retry.FullJitter {
		wait = time.Duration(rand.Float64() * float64(wait))
	}
	l.s.log.LogAttrs(ctx, slog.LevelWarn, msg, slog.Int("lane", l.idx), slog.Int("in_a_row", quick), slog.Duration("wait", wait))
	return wait
}

// retire keeps reading the old socket of a replaced channel until it has been read to the end,
// so that messages already on their way are not lost (duplicates are dropped by the dispatch
// loop), then closes it with a close handshake. The channel's subscriptions are removed first (see
// unsubscribe), so that the socket carries no new events, only those already on their way. The
// socket counts as read to the end once its reader has spent the overlap in all waiting in Read,
// counted since the retirement began or since it last had to wait for room in the buffer, and
// waits in Read now. Time the reader spends holding an event for a slow dispatcher does not count:
// messages then wait unread in the socket, and the close handshake would discard them
// (coder/websocket reads and drops data frames until the peer's close). freed is closed once the
// channel no longer counts among the lane's channels: when its socket is closed, or when the
// channel expires, after which Genesys no longer counts it either; the reader then goes on until
// Genesys closes the socket or it has been read to the end. Only the shutdown (ctx) closes the
// socket earlier.
func (l *lane) retire(ctx context.Context, old *conn, freed chan<- struct{}) {
	overlap := l.s.cfg.overlap
	old.startRetiring()
	freeOnce := sync.OnceFunc(func() { close(freed) })
	defer freeOnce()
	// Stopped before the channel is given back (see unsubscribe); deferred too, for the paths
	// that keep it.
	stopUnsubscribing := l.unsubscribe(ctx, old)
	defer stopUnsubscribing()
	// The overlap on the wall clock, from the replacement's subscription: past it, a socket still
	// unread because the dispatcher is behind is worth a line in the log, once, since its channel
	// stays open.
	late := time.NewTimer(overlap)
	defer late.Stop()
	expiry := time.NewTimer(time.Until(old.claim.expires()))
	defer expiry.Stop()
	lateC, expiryC := late.C, expiry.C
	lateLogged := false
	for {
		left, reading, stalled := old.idleLeft(overlap)
		if reading && left <= 0 {
			// A close handshake tells Genesys the channel is no longer in use before the lane
			// may open another one. Whatever arrives now came after the overlap, over the new
			// channel too.
			_ = old.ws.Close(websocket.StatusNormalClosure, "channel replaced")
			stopUnsubscribing()
			old.close()
			return
		}
		if lateC == nil && stalled && !lateLogged {
			lateLogged = true
			l.s.log.LogAttrs(ctx, slog.LevelInfo, "notifications: the replaced channel stays open until its socket is read to the end: the dispatcher is behind",
				slog.Int("lane", l.idx), slog.String("channel", old.ch.ID), slog.Duration("overlap", overlap))
		}
		// Without a wait in Read under way, nothing is due until the reader starts one.
		var (
			due  <-chan time.Time
			stop = func() bool { return false }
		)
		if reading {
			t := time.NewTimer(left)
			due, stop = t.C, t.Stop
		}
		select {
		case <-due:
		case <-old.wake:
		case <-lateC:
			lateC = nil
		case <-expiryC:
			expiryC = nil
			select {
			case <-old.done: // Genesys closed the socket as the channel expired: handled next
			default:
				l.s.log.LogAttrs(ctx, slog.LevelWarn, "notifications: a replaced channel expired before its socket was read to the end; reading it until Genesys closes it",
					slog.Int("lane", l.idx), slog.String("channel", old.ch.ID))
			}
			stopUnsubscribing()
			old.claim.release()
			freeOnce()
		case <-old.done:
			stopUnsubscribing()
			old.close()
			return
		case <-ctx.Done():
			stopUnsubscribing()
			l.closeAtShutdown(old)
			return
		}
		stop()
	}
}

// unsubscribe removes, in the background, the subscriptions of old, a channel whose replacement
// is subscribed, and returns a function that cuts the request short and waits for it. Genesys
// sends every event to every channel that subscribes its topic, so an old channel still
// subscribed would carry a second copy of the stream, behind the first by all that waits unread
// in its socket: behind a dispatcher that never catches up, its reader would keep waiting for room
// in the buffer, the socket would never be read to the end before the channel expired, and the
// two copies of an event would come further apart than the dedup window reaches. Once the
// replacement is subscribed, an event goes to it, so that removing the old subscriptions loses
// nothing. A 404 means the channel has expired or was evicted: nothing more comes over it. A
// request refused for now is sent again after the wait asked for, as in restore; one that fails
// otherwise leaves the channel subscribed, with a warning, and its socket is read as before.
// The retirement stops the request before the channel is given back: a request still under way
// must not remove the subscriptions of a lane that has connected the channel again. Cut short, it
// may still be carried out, and the channel is held back (see setSubscriptions).
func (l *lane) unsubscribe(ctx context.Context, old *conn) (stop func()) {
	select {
	case <-old.done:
		return func() {} // a failed channel's socket carries nothing more
	default:
	}
	uctx, cancel := context.WithCancel(ctx)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			err := l.setSubscriptions(uctx, old.claim, nil)
			switch {
			case err == nil:
				l.s.log.LogAttrs(uctx, slog.LevelDebug, "notifications: removed the subscriptions of the replaced channel",
					slog.Int("lane", l.idx), slog.String("channel", old.ch.ID))
				return
			case uctx.Err() != nil || genesys.IsNotFound(err):
				return
			}
			if wait, ok := l.throttled(err); ok {
				l.s.log.LogAttrs(uctx, slog.LevelWarn, "notifications: removing the subscriptions of a replaced channel was refused for now; waiting before sending it again",
					slog.Int("lane", l.idx), slog.String("channel", old.ch.ID), slog.Duration("wait", wait), slog.String("error", err.Error()))
				if retry.Sleep(uctx, l.s.cfg.clock, wait) != nil {
					return
				}
				continue
			}
			l.s.log.LogAttrs(uctx, slog.LevelWarn, "notifications: removing the subscriptions of a replaced channel failed; it receives new events too until its socket is read to the end or it expires",
				slog.Int("lane", l.idx), slog.String("channel", old.ch.ID), slog.String("error", err.Error()))
			return
		}
	}()
	return sync.OnceFunc(func() {
		cancel()
		<-finished
	})
}

// closeAtShutdown closes c, whose reader may have fallen behind a slow dispatcher: messages that
// wait unread in the socket are then dropped, never read, and only a log line tells of them.
func (l *lane) closeAtShutdown(c *conn) {
	if c.isBlocked() {
		l.s.log.LogAttrs(context.Background(), slog.LevelWarn, "notifications: closing a socket whose reader is behind the dispatcher; messages still waiting in it are not read",
			slog.Int("lane", l.idx), slog.String("channel", c.ch.ID))
	}
	c.close()
}

// rotateIn returns how long until the channel should be replaced because of its expiry: the
// expiry margin before it expires, but not before half its life, so that short-lived channels do
// not churn.
func (l *lane) rotateIn(c *conn) time.Duration {
	// The account's expiry counts from the channel's creation, which for a channel connected again
	// was long before its socket was opened.
	exp := c.claim.expires()
	at := exp.Add(-l.s.cfg.expiryMargin)
	if half := c.opened.Add(exp.Sub(c.opened) / 2); at.Before(half) {
		at = half
	}
	return max(time.Until(at), 0)
}

// connect takes a channel from the source's account (see account), connects its socket, starts
// reading it and subscribes the lane's topics, retrying with the reconnect policy. An attempt that
// fails leaves its channel to the next attempt, which connects and subscribes it again rather than
// creating another: Genesys keeps every channel created for 24 hours, so each one left behind
// would count against its limit of 20 and bring the oldest, which another lane may be using,
// closer to eviction. Only a channel that Genesys no longer has, or that has expired, is given up.
func (l *lane) connect(ctx context.Context) (*conn, error) {
	var (
		c    *conn
		kept *claim // the channel of the attempt that failed last
	)
	err := l.s.reconnect.Do(ctx, func(actx context.Context) error {
		if kept != nil && kept.expired() {
			kept.drop()
			kept = nil
		}
		if kept == nil {
			cl, err := l.s.account.acquire(actx, l.idx)
			if err != nil {
				return err
			}
			kept = cl
		}
		ch := kept.channel()
		// Neither the HTTP client nor the reconnect policy need bound an attempt, and a proxy that
		// takes the connection but never answers the handshake would otherwise hold the lane for
		// ever, without a socket: the answer must come within the heartbeat timeout, as a message
		// must once the socket is open.
		dctx, cancel := l.s.silenceContext(actx)
		ws, resp, err := websocket.Dial(dctx, ch.ConnectURI, &websocket.DialOptions{HTTPClient: l.s.client.HTTPClient()})
		unanswered := err != nil && actx.Err() == nil && errors.Is(context.Cause(dctx), context.DeadlineExceeded)
		cancel()
		if unanswered {
			return fmt.Errorf("notifications: connecting to channel %s: no answer to the WebSocket handshake within the heartbeat timeout (%v): %w",
				ch.ID, l.s.cfg.heartbeatTimeout, err)
		}
		if err != nil {
			err = fmt.Errorf("notifications: connecting to channel %s: %w", ch.ID, err)
			if d, ok := dialRetryAfter(resp); ok {
				err = retry.After(err, d) // the reconnect policy waits at least that long
			}
			// The socket endpoint's answer alone does not make the channel gone: the API must say
			// so too, or a channel that still counts against the limit would be forgotten.
			if resp != nil && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone) {
				if serr := l.setSubscriptions(actx, kept, l.topics); genesys.IsNotFound(serr) {
					return l.gone(ctx, &kept, err)
				}
			}
			return err
		}
		ws.SetReadLimit(l.s.cfg.readLimit)
		// Read before subscribing, so that the first events never wait in a socket buffer.
		conn := l.start(ctx, kept, ws)
		if err := l.setSubscriptions(actx, kept, l.topics); err != nil {
			conn.shut()
			if genesys.IsNotFound(err) {
				return l.gone(ctx, &kept, err)
			}
			return err
		}
		conn.subscribed = l.s.cfg.clock.Now()
		c, kept = conn, nil
		return nil
	}, retry.OnRetry(func(a retry.Attempt) {
		attrs := []slog.Attr{slog.Int("lane", l.idx), slog.Int("attempt", a.Number), slog.Duration("wait", a.Wait), slog.String("error", a.Err.Error())}
		if kept != nil {
			attrs = append(attrs, slog.String("channel", kept.channel().ID)) // connected again by the next attempt
		}
		l.s.log.LogAttrs(ctx, slog.LevelWarn, "notifications: opening a channel failed, retrying", attrs...)
	}))
	if err != nil {
		if kept != nil {
			kept.release()
		}
		return nil, fmt.Errorf("notifications: opening a channel for %d topics: %w", len(l.topics), err)
	}
	l.s.log.LogAttrs(ctx, slog.LevelInfo, "notifications: channel subscribed",
		slog.Int("lane", l.idx), slog.String("channel", c.ch.ID), slog.Int("topics", len(l.topics)), slog.Time("expires", c.claim.expires()))
	return c, nil
}

// gone gives up the claimed channel, which Genesys answered it does not have, and returns a
// retryable error so that the next attempt takes another. Genesys drops a channel before its
// expiry only to make room for a newer one, so another process or source creating channels with
// the same OAuth client is the likely cause.
func (l *lane) gone(ctx context.Context, kept **claim, err error) error {
	ch := (*kept).channel()
	(*kept).drop()
	*kept = nil
	l.s.log.LogAttrs(ctx, slog.LevelWarn, "notifications: Genesys no longer has the channel before its expiry; is another client creating channels with the same OAuth client?",
		slog.Int("lane", l.idx), slog.String("channel", ch.ID), slog.Time("expires", ch.Expires))
	// Not wrapped: the client's answer is marked permanent, and the next attempt may well succeed.
	return fmt.Errorf("notifications: channel %s no longer exists: %v", ch.ID, err)
}

func (l *lane) start(ctx context.Context, cl *claim, ws *websocket.Conn) *conn {
	cctx, cancel := context.WithCancel(ctx)
	c := &conn{ch: cl.channel(), claim: cl, ws: ws, opened: time.Now(), cancel: cancel, done: make(chan struct{}), closing: make(chan struct{}),
		unsubscribed: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
	go l.read(cctx, c)
	if l.s.cfg.pingInterval > 0 {
		c.pinger.Go(func() { l.ping(cctx, c) })
	}
	return c
}

// read decodes every message of the socket with the decoder the HTTP path uses, keeps heartbeats
// and system notices for itself, and hands events to the dispatch loop, waiting while its buffer
// is full.
func (l *lane) read(ctx context.Context, c *conn) {
	defer close(c.done)
	for {
		// The silence allowed is measured while waiting for the socket only, never while waiting
		// for room in the buffer: a slow dispatcher is not a dead socket.
		rctx, cancel := l.s.silenceContext(ctx)
		c.readStarts()
		_, data, err := c.ws.Read(rctx)
		c.readEnds()
		silent := err != nil && errors.Is(context.Cause(rctx), context.DeadlineExceeded)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				c.reason, c.err = reasonSocketError, err
				if silent {
					c.reason = reasonHeartbeatMissed
					l.s.m.missed.Add(context.Background(), 1)
				}
			}
			return
		}
		ev, err := eventbridge.DecodeNotification(data)
		if err != nil {
			l.s.m.message(kindMalformed)
			l.s.log.LogAttrs(ctx, slog.LevelWarn, "notifications: message is not a notification, skipped",
				slog.String("channel", c.ch.ID), slog.Int("bytes", len(data)), slog.String("error", err.Error()))
			continue
		}
		switch {
		case eventbridge.IsHeartbeat(ev):
			l.s.m.message(kindHeartbeat)
			continue
		case eventbridge.IsSocketClosing(ev):
			l.s.m.message(kindSystem)
			c.signal(reasonSocketClosing)
			continue
		case strings.HasPrefix(ev.Topic, "v2.system."):
			l.s.m.message(kindSystem)
			if strings.HasPrefix(ev.Topic, "v2.system.no_longer_subscribed") {
				// The lane subscribes again; one notice waiting is as good as several.
				select {
				case c.unsubscribed <- struct{}{}:
				default:
				}
			}
			l.s.log.LogAttrs(ctx, slog.LevelInfo, "notifications: system notice", slog.String("channel", c.ch.ID), slog.String("topic", ev.Topic))
			continue
		}
		l.s.m.message(kindEvent)
		select {
		case l.events <- ev:
			continue
		default:
		}
		c.setBlocked(true)
		select {
		case l.events <- ev:
			c.setBlocked(false)
		case <-l.pushCtx.Done():
			l.s.m.event(outcomeLost, 1)
			l.s.log.LogAttrs(context.Background(), slog.LevelError, "notifications: event read but not delivered before the drain timeout",
				slog.String("id", ev.ID), slog.String("type", ev.Type))
			return
		}
	}
}

func (l *lane) ping(ctx context.Context, c *conn) {
	t := time.NewTicker(l.s.cfg.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			wctx, cancel := context.WithTimeout(ctx, l.s.cfg.heartbeatTimeout)
			err := c.ws.Write(wctx, websocket.MessageText, pingMessage)
			cancel()
			if err != nil {
				return
			}
		}
	}
}
