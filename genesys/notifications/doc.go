// Package notifications takes Genesys Cloud events in over the WebSocket Notification API, for
// teams that do not route them through Amazon EventBridge, and hands each one to the same
// Dispatcher the HTTP intake uses.
//
// A Source opens notification channels (POST /api/v2/notifications/channels), subscribes the topics
// (PUT /api/v2/notifications/channels/{id}/subscriptions), reads each channel's socket, and decodes
// every message with eventbridge.DecodeNotification, the decoder of the HTTP path, so an event
// looks the same whichever way it came: Type is the topic template ("v2.users.{id}.presence"),
// Topic the concrete topic, Data the eventBody, and ID a digest of topic, CorrelationId and body
// (WebSocket messages carry no id of their own). A message without a CorrelationId takes its
// timestamp into the digest instead; one with neither gets a random ID, since nothing tells it
// from another with the same body: it is never taken for a duplicate, and a copy of it that
// arrives over two channels is delivered twice.
//
// Topics must be concrete ("v2.users.<uuid>.presence"): the WebSocket API has no "{id}" wildcard,
// and New refuses templates with genesys.ErrTemplateTopic. A channel subscribes at most 1,000
// topics, so the source holds one channel per 1,000 (at most WithMaxChannels, and never more than
// MaxChannels, 10: Genesys allows 20 per OAuth client and evicts the oldest beyond that, and a
// maintenance notice makes every channel open its replacement at the same time).
//
// # Keeping the channels alive
//
// A channel is replaced by another, with the whole subscription set, when its socket fails, when it
// stays silent longer than the heartbeat timeout (Genesys sends a heartbeat every 30 seconds;
// WithHeartbeatTimeout defaults to 60), when Genesys announces maintenance with
// v2.system.socket_closing, and some minutes before its 24-hour expiry (WithExpiryMargin): the
// expiry in Genesys' answer, unless that is already past or more than 24 hours away (a local clock
// or Genesys' that is wrong, or a bad answer; a warning is logged unless Genesys' clock is less
// than a minute ahead), and then 24 hours after the answer. When Genesys drops a channel's
// subscriptions (v2.system.no_longer_subscribed), the source first subscribes the topics again on
// the same channel, which replaces its whole subscription set and needs no new channel; a request
// refused for now (a 429, or an answer with Retry-After) is sent again after the wait asked for, up
// to the reconnect policy's MaxRetryAfter but never less than its InitialInterval, and only if the
// request fails otherwise is the channel replaced. Should the channel need replacing anyway while
// that request waits (inside the genesys client too), the request is cut short. The replacement
// is connected and subscribed before the old channel is dropped. The old channel's subscriptions
// are then removed (a PUT of an empty list), so that its socket carries only what was already on
// its way, and the socket is still read until its reader has spent a short overlap (WithOverlap)
// waiting for the next message, so that all of it arrives, however long a slow dispatcher keeps
// the reader from the socket (see Delivery semantics); a message that comes over both is
// dispatched once (deduplicated by ID over the last WithDedupWindow events). A set of topics never
// holds more than two channels: when a replacement must itself be replaced while the old channel
// is still read, a replacement whose socket failed is dropped first, and a live one waits until
// the old channel is closed or has expired, or until its own socket fails (Genesys closes every
// socket about a minute after a maintenance notice): it is then dropped and its successor opened
// at once, beside the old channel still being read.
//
// Opening a channel is retried with backoff (WithReconnectPolicy); a WebSocket handshake that gets
// no answer within the heartbeat timeout (a proxy that takes the connection and never answers) is
// such a failed attempt. A channel replaced within the heartbeat timeout of being subscribed (a
// socket a proxy closes at once, or a channel whose expiry comes that soon) counts as a failed
// attempt too: the lane waits before opening the next one, longer each time, as the policy's
// interval grows, until a channel lives longer than the heartbeat timeout; the policy's attempt and
// age budgets, which say when to stop trying to open a channel, neither end nor shorten this wait.
// Replacing a channel creates or connects one and subscribes up to 1,000 topics, requests that
// count against the organization's API rate limit; this keeps a socket that keeps breaking from
// spending it. For the same reason, subscriptions that Genesys drops again within the heartbeat
// timeout of the answer to the request that restored them are restored only after such a wait,
// growing in the same way while the drops go on; the wait ends at once when the channel must be
// replaced anyway (its socket fails, Genesys announces that it closes the socket, or the channel
// nears its expiry), since Genesys closes the socket about a minute after its notice. Heartbeats
// and pongs (topic channel.metadata) and system notices are never dispatched. WithPingInterval
// adds client pings, whose pongs also count as signs of life.
//
// # Channel limits
//
// Genesys keeps every channel for 24 hours, whether a socket is connected to it or not (a channel
// cannot be deleted), counts them all against 20 per OAuth client, and when a 21st is created it
// evicts the oldest, even one in use, closing its socket. A source keeps this promise: no channel
// it creates makes Genesys evict a channel that one of its own lanes is using, as long as no other
// process or source creates channels with the same OAuth client at the same time. It keeps a record
// of the channels Genesys may hold for it, in the order their creations were sent:
//
//   - An attempt to open a channel that fails once the channel exists (the socket is refused,
//     subscribing fails) leaves the channel to the next attempt, which connects and subscribes it
//     again instead of creating another. Only a channel that Genesys says it does not have (404) is
//     given up, with a warning: Genesys drops a channel early only to make room for a newer one.
//   - A creation whose answer is lost (a 5xx, a timeout, a connection broken after the request was
//     sent, a success answer without the channel's id or connectUri, or with an id the genesys
//     client refuses because it holds control or formatting characters) is not sent again
//     (genesys.ErrOutcomeUnknown), since Genesys may have created the
//     channel, or may still create it: a request the client gave up on after its per-attempt
//     timeout, or one a gateway answered 502 or 504 for, can wait in Genesys' queue after the
//     failure was seen. The source takes such a channel as created at any moment up to a grace
//     period of 5 minutes after the failure (longer than the client's default per-attempt timeout
//     of 60 seconds, and than a backend goes on working behind a gateway that gave up), counts it
//     as a channel that it cannot connect until 24 hours after that, logs a warning, counts it
//     (fanbridge.notifications.channels, origin unknown) and tries again after the reconnect
//     policy's wait, or after the longer one the answer's Retry-After asked for (up to the
//     policy's MaxRetryAfter); Run goes on. It never stops counting one within its grace period.
//   - While fewer than 20 channels are counted, a lane that needs a channel creates one. At 20, it
//     connects again the unused channel (closed by an earlier replacement) that expires last,
//     among those not held back (see below), and subscribes its topics there (origin reused).
//   - A request that changes a channel's subscriptions may be carried out late too, as a creation
//     may, and Genesys applies a channel's requests in the order it carries them out. The removal
//     of a replaced channel's subscriptions, cut short once its socket has been read to the end,
//     would otherwise empty the subscriptions of a lane that has connected the channel again
//     meanwhile, and a request to subscribe again, cut short because the channel is replaced, would
//     replace them with its own topics: that lane's socket would carry heartbeats and no event
//     until its channel was next replaced, and nothing would tell. So a channel given back after
//     such a request was cut short once it had gone out or failed (a 5xx, a timeout, a broken
//     connection), or succeeded only once the genesys client had sent it again, is held back for
//     the same grace period of 5 minutes from when the lane saw the request end: it still counts,
//     and no lane connects it again before. A request that never went out, or that Genesys
//     refused with a 4xx answer read in full, holds nothing back. The genesys client tells how
//     often a request went out (genesys.WithSendCount): each copy the transport had a connection
//     for, also one it sent again itself within one exchange (net/http's HTTP/2 transport does
//     after a stream reset), but not the token request nor a copy refused with a 401 and sent
//     again with a new token. Through a transport of the caller's that reports no connections
//     (no net/http/httptrace GetConn or GotConn, see genesys.WithHTTPClient), each exchange counts
//     as one request that went out unless it failed with a dial or DNS error, which counts as
//     none; copies such a transport sends again itself are not seen, so a request it sent twice
//     and that succeeded holds nothing back.
//   - With 20 or more counted and none that may be connected again, creating one more evicts at
//     most as many channels as are counted beyond 19, the oldest Genesys holds, and those are among
//     as many of the oldest counted: those that do not exist only make room. A lost creation is
//     older than a channel only when that channel's creation was sent after the lost one's grace
//     period. When none of those that may be the oldest is in use (they are then lost creations,
//     or channels held back, never connected again afterwards since Genesys may have evicted
//     them), the source creates the channel, one creation at a time, and then stops counting the
//     oldest beyond 20. So creations that answer 503 during an outage longer than the grace period
//     do not stop the source for 24 hours once they fill the 20 places. Only when a channel in use
//     may be among them (after a shorter outage, a channel created within the grace period of the
//     lost creations before it) does the lane wait, until a channel is given back, a channel held
//     back may be connected again, or one expires, with a warning and
//     fanbridge.notifications.channel_limit_waits. A lane opening a successor while its old channel
//     is still live gives the old one back as soon as its socket fails, so that a wait never
//     outlasts the sockets Genesys closes after a maintenance notice.
//   - The record covers this source only. Channels created with the same OAuth client elsewhere, by
//     another source or another running process, count against the same 20; those created later
//     than a channel of this source bring it closer to eviction, and the source cannot see them.
//     Give each running source its own OAuth client. Channels of a process that has stopped are
//     older than every channel of its successor, so they are the first evicted and do no harm.
//
// # Delivery semantics
//
// The WebSocket path is at-most-once on Genesys' side: Genesys does not store notifications for a
// channel and has no acknowledgement or redelivery. An event published while no channel of ours was
// subscribed is never sent to us, and nothing can bring it back: between Genesys dropping a
// channel's subscriptions and the source subscribing its topics again (one request once the
// v2.system.no_longer_subscribed notice arrives, see Keeping the channels alive), during a
// reconnection after a failure (which waits longer and longer while new channels keep failing soon
// after being subscribed, see Keeping the channels alive), during an outage of Genesys' API, after
// Genesys evicted a channel because channels were created elsewhere with the same OAuth client (see
// Channel limits), while a lane waits for a place among the 20, while credentials are refused,
// while the process is down. Use the EventBridge integration (package genesys,
// EnsureEventBridgeIntegration) where every event matters: AWS retries a delivery for 24 hours.
//
// What the source has read, it does not drop quietly:
//
//   - Events are dispatched one at a time, in the order they were read. A Dispatch error is retried
//     with backoff for as long as it takes (WithDispatchPolicy); later events wait, so the order
//     holds. fanbridge.ErrNoMatch and fanbridge.ErrDuplicate count as handled. An error marked
//     retry.Permanent gives the event up, and so does a limit the dispatch policy sets on purpose
//     (MaxAttempts above zero, MaxAge; a zero MaxAttempts means no limit here): the event is
//     logged at error level with its id and type and counted as failed.
//   - While the dispatcher is slow or failing, decoded events wait in a bounded buffer
//     (WithBufferSize); when it is full, the sockets are no longer read, and messages wait in the
//     network buffers instead. Genesys may then close a socket that does not keep up; the source
//     reconnects, and what Genesys dropped meanwhile is lost (see above). Waiting for room in the
//     buffer never counts as a silent socket.
//   - A channel replaced while the dispatcher is behind (at its expiry, after a maintenance notice,
//     after subscribing again failed) stays open until its socket has been read to the end: the
//     events published before its replacement was subscribed come over it alone, and closing a
//     WebSocket drops what is still unread in it. Once the replacement is subscribed, the old
//     channel's subscriptions are removed, so that later events come over the replacement alone and
//     the old socket carries only its backlog. An event published while that request is under way
//     comes over both, the old socket's copy behind its backlog: should the backlog be longer than
//     the dedup window, that copy is dispatched too. A refusal for now (a 429, or an answer with
//     Retry-After) is sent again after the wait asked for, as when subscribing again, and a 404
//     (the channel has expired or was evicted) needs nothing more; should the request fail
//     otherwise, a warning is logged and the old channel receives every event until its socket is
//     closed, each a second copy that a dedup window shorter than the backlog lets through, for as
//     long as the dispatcher stays behind. The old socket is closed once its reader waits in Read
//     and has spent the overlap (WithOverlap) in all waiting there, counting from the replacement's
//     subscription or from the last time the reader had to wait for room in the buffer, whichever
//     is later; time spent waiting for room never counts. A message that comes over the old socket
//     after that is taken to have been published once the replacement was subscribed, so that it
//     comes over the new socket too. A replaced channel still open when the overlap has passed
//     since its replacement was subscribed, and whose reader has had to wait for room in the buffer
//     before or after that, is logged once (info). It counts among the lane's two channels until it
//     is closed or expires; should it expire first, a warning is logged and its socket is still
//     read until Genesys closes it, so what Genesys sent before is not lost either.
//   - When Run's context ends or Close is called, the sockets are closed at once, those of replaced
//     channels still being read too, and the events already read are still dispatched, for at most
//     the drain timeout (WithDrainTimeout). Any left then are logged and counted as lost. Messages
//     still unread in a socket then (it waited behind a full buffer) are never read, so nothing can
//     count them: a warning names each such socket. Run ending with an error (see Errors) shuts
//     down the same way.
//
// # Errors
//
// New returns errors wrapping ErrInvalidConfig (with genesys.ErrTemplateTopic or
// genesys.ErrTooManyTopics when the topics are at fault), among them for a buffer or a dedup
// window beyond MaxBufferSize or MaxDedupWindow (1,000,000 each), which Run would reserve in full. Run returns nil after Close, the
// context's error when its context ended, ErrAlreadyRunning or ErrClosed when misused, and the
// error of the genesys client when a channel cannot be opened for a reason no retry cures: refused
// credentials (genesys.IsUnauthorized), a missing permission, a topic Genesys refuses. Such an error
// stops the source as Close does (see Delivery semantics), without waiting for a replaced channel's
// socket to be read to the end: Run returns it once the events already read are dispatched, within
// the drain timeout. An exhausted API quota, and any answer with Retry-After (a WebSocket
// handshake's included), is waited out (up to the reconnect policy's MaxRetryAfter, an hour by
// default).
//
// # Concurrency
//
// Run may be called once; Close may be called from any goroutine, any number of times, and waits
// until Run has returned. Dispatch is called from one goroutine at a time, and may call Close (on
// an event it cannot handle, say): Run waits for Dispatch to return, so Close called from Dispatch
// starts the shutdown and returns at once, and Run returns nil once Dispatch has returned and the
// events already read are drained. A goroutine that Dispatch waits for must not call Close: that
// Close would wait for Run, which waits for Dispatch.
//
// # Observability
//
// The source logs connections, replacements and failures to the WithLogger logger (never event
// bodies or tokens) and counts, with WithMeterProvider: fanbridge.notifications.messages by kind
// (event, heartbeat, system, malformed), fanbridge.notifications.events by outcome (delivered,
// ignored, duplicate, failed, lost), fanbridge.notifications.reconnects by reason (socket_error,
// heartbeat_missed, socket_closing, no_longer_subscribed when subscribing again failed, expiry),
// fanbridge.notifications.heartbeats_missed, fanbridge.notifications.dispatch_retries,
// fanbridge.notifications.channels by origin (created; reused because 20 channels of the source are
// counted; unknown for a creation whose answer was lost) and
// fanbridge.notifications.channel_limit_waits.
package notifications
