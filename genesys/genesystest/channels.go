package genesystest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// Limits of the WebSocket Notification API, as Genesys documents them.
const (
	maxTopicsPerChannel = 1000
	maxChannels         = 20
)

type channel struct {
	id      string
	expires time.Time
	topics  []string
	sock    *socket
	sockets int // sockets connected so far
	timer   *time.Timer
}

func (ch *channel) subscribed(topic string) bool { return slices.Contains(ch.topics, topic) }

type socket struct {
	conn   *websocket.Conn
	ch     *channel
	ctx    context.Context
	cancel context.CancelFunc
	silent bool // no heartbeats and no pongs: a socket that went quiet; guarded by Server.mu
}

func (so *socket) closeNow() {
	so.cancel()
	_ = so.conn.CloseNow()
}

// ChannelInfo describes a notification channel of the fake.
type ChannelInfo struct {
	ID        string
	Topics    int
	Connected bool
	// Sockets is how many sockets have connected to the channel so far; more than one means a
	// client connected the same channel again.
	Sockets int
	Expires time.Time
}

// Channels returns the live channels, oldest first.
func (s *Server) Channels() []ChannelInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.channelInfoLocked()
}

func (s *Server) channelInfoLocked() []ChannelInfo {
	out := make([]ChannelInfo, len(s.channels))
	for i, ch := range s.channels {
		out[i] = ChannelInfo{ID: ch.id, Topics: len(ch.topics), Connected: ch.sock != nil, Sockets: ch.sockets, Expires: ch.expires}
	}
	return out
}

// ChannelsCreated returns how many channels were created so far.
func (s *Server) ChannelsCreated() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created
}

// EvictedInUse returns how many channels with a connected socket were evicted so far because
// another channel was created beyond the limit of 20 (the oldest channel goes, whether or not it
// is connected); a client that never creates a channel while it holds 20 sees 0.
func (s *Server) EvictedInUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.evictedInUse
}

// WaitChannels blocks until cond, called with the live channels (oldest first) and the number of
// channels created so far, returns true, or ctx ends. It is checked after every change of
// channels, subscriptions or sockets.
func (s *Server) WaitChannels(ctx context.Context, cond func(live []ChannelInfo, created int) bool) error {
	return s.waitFor(ctx, func() bool { return cond(s.channelInfoLocked(), s.created) })
}

func (s *Server) socketsLocked() []*socket {
	out := make([]*socket, 0, len(s.sockets))
	for so := range s.sockets {
		out = append(out, so)
	}
	return out
}

func (s *Server) findChannelLocked(id string) *channel {
	for _, ch := range s.channels {
		if ch.id == id {
			return ch
		}
	}
	return nil
}

// removeChannelLocked forgets ch and returns its socket, which the caller closes outside the lock.
func (s *Server) removeChannelLocked(ch *channel) *socket {
	if i := slices.Index(s.channels, ch); i >= 0 {
		s.channels = slices.Delete(s.channels, i, i+1)
	}
	if ch.timer != nil {
		ch.timer.Stop()
	}
	so := ch.sock
	ch.sock = nil
	if so != nil {
		delete(s.sockets, so)
	}
	s.notifyLocked()
	return so
}

func (s *Server) handleCreateChannel(w http.ResponseWriter, r *http.Request) {
	now := s.opts.now()
	s.mu.Lock()
	var evicted *socket
	if len(s.channels) >= maxChannels {
		// The 21st channel evicts the oldest one, connected or not, as Genesys documents it.
		// s.channels is in order of creation.
		evicted = s.removeChannelLocked(s.channels[0])
		if evicted != nil {
			s.evictedInUse++
		}
	}
	ch := &channel{id: randomUUID(), expires: now.Add(s.opts.channelLifetime)}
	ch.timer = time.AfterFunc(s.opts.channelLifetime, func() { s.expireChannel(ch) })
	s.channels = append(s.channels, ch)
	s.created++
	s.notifyLocked()
	s.mu.Unlock()
	if evicted != nil {
		evicted.closeNow()
	}
	s.writeJSON(w, http.StatusOK, map[string]any{
		"id":         ch.id,
		"connectUri": "ws" + strings.TrimPrefix(s.URL, "http") + "/channels/" + ch.id,
		"expires":    ch.expires.UTC().Format("2006-01-02T15:04:05.000Z"),
	})
}

// expireChannel ends a channel whose lifetime is over, closing its socket as Genesys does.
func (s *Server) expireChannel(ch *channel) {
	s.mu.Lock()
	if s.findChannelLocked(ch.id) == nil {
		s.mu.Unlock()
		return
	}
	so := s.removeChannelLocked(ch)
	s.mu.Unlock()
	if so != nil {
		_ = so.conn.Close(websocket.StatusGoingAway, "channel expired")
		so.cancel()
	}
}

func (s *Server) handleGetSubscriptions(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ch := s.findChannelLocked(r.PathValue("id"))
	var topics []string
	if ch != nil {
		topics = slices.Clone(ch.topics)
	}
	s.mu.Unlock()
	if ch == nil {
		s.writeError(w, http.StatusNotFound, "not.found", "The channel does not exist.")
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"entities": topicEntities(topics)})
}

func topicEntities(topics []string) []map[string]string {
	out := make([]map[string]string, len(topics))
	for i, t := range topics {
		out[i] = map[string]string{"id": t}
	}
	return out
}

func (s *Server) handlePutSubscriptions(w http.ResponseWriter, r *http.Request) {
	var body []struct {
		ID string `json:"id"`
	}
	if !s.decodeBody(w, r, &body) {
		return
	}
	if len(body) > maxTopicsPerChannel {
		s.writeError(w, http.StatusBadRequest, "bad.request",
			fmt.Sprintf("A channel may subscribe at most %d topics; the request has %d.", maxTopicsPerChannel, len(body)))
		return
	}
	topics := make([]string, 0, len(body))
	for _, t := range body {
		switch {
		case strings.ContainsAny(t.ID, "{}"):
			s.writeError(w, http.StatusBadRequest, "bad.request", "Topic "+t.ID+" is a template; subscriptions need concrete ids.")
			return
		case !matchTopic(t.ID):
			s.writeError(w, http.StatusBadRequest, "bad.request", "Topic "+t.ID+" is not a valid topic.")
			return
		}
		if !slices.Contains(topics, t.ID) {
			topics = append(topics, t.ID)
		}
	}
	s.mu.Lock()
	ch := s.findChannelLocked(r.PathValue("id"))
	if ch != nil {
		ch.topics = topics
		s.notifyLocked()
	}
	s.mu.Unlock()
	if ch == nil {
		s.writeError(w, http.StatusNotFound, "not.found", "The channel does not exist.")
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"entities": topicEntities(topics)})
}

// handleSocket is the channel's WebSocket. One socket per channel: a new connection replaces the
// old one.
func (s *Server) handleSocket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ch := s.findChannelLocked(r.PathValue("id"))
	closed := s.closed
	s.mu.Unlock()
	if ch == nil || closed {
		s.writeError(w, http.StatusNotFound, "not.found", "The channel does not exist.")
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	so := &socket{conn: conn, ch: ch, ctx: ctx, cancel: cancel}
	s.mu.Lock()
	if s.findChannelLocked(ch.id) == nil || s.closed {
		s.mu.Unlock()
		so.closeNow()
		return
	}
	old := ch.sock
	if old != nil {
		delete(s.sockets, old)
	}
	ch.sock = so
	ch.sockets++
	s.sockets[so] = struct{}{}
	s.notifyLocked()
	s.mu.Unlock()
	if old != nil {
		old.closeNow()
	}
	go s.heartbeats(so)
	s.readLoop(so)
}

// Pings returns how many pings the server has received over its sockets.
func (s *Server) Pings() int64 { return s.pings.Load() }

// readLoop answers pings until the socket closes, then forgets it.
func (s *Server) readLoop(so *socket) {
	defer func() {
		so.closeNow()
		s.mu.Lock()
		if _, ok := s.sockets[so]; ok {
			delete(s.sockets, so)
			if so.ch.sock == so {
				so.ch.sock = nil
			}
			s.notifyLocked()
		}
		s.mu.Unlock()
	}()
	for {
		_, data, err := so.conn.Read(so.ctx)
		if err != nil {
			return
		}
		var msg struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &msg) != nil || msg.Message != "ping" {
			continue
		}
		s.pings.Add(1)
		if s.isSilent(so) {
			continue
		}
		_ = s.write(so, compactJSON(map[string]any{"topicName": "channel.metadata", "eventBody": map[string]string{"message": "pong"}}))
	}
}

func (s *Server) isSilent(so *socket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return so.silent
}

func (s *Server) heartbeats(so *socket) {
	if s.opts.heartbeat <= 0 {
		return
	}
	t := time.NewTicker(s.opts.heartbeat)
	defer t.Stop()
	beat := compactJSON(map[string]any{"topicName": "channel.metadata", "eventBody": map[string]string{"message": "WebSocket Heartbeat"}})
	for {
		select {
		case <-so.ctx.Done():
			return
		case <-t.C:
			if s.isSilent(so) {
				continue
			}
			if s.write(so, beat) != nil {
				return
			}
		}
	}
}

func (s *Server) write(so *socket, msg []byte) error {
	ctx, cancel := context.WithTimeout(so.ctx, 10*time.Second)
	defer cancel()
	return so.conn.Write(ctx, websocket.MessageText, msg)
}

// Publish sends an event of the concrete topic, with body as its eventBody, to every connected
// socket whose channel subscribes to the topic, and returns the event's sequence number (1, 2, ...
// across the server) and how many sockets it was written to. Each event carries a correlation id
// derived from its sequence number. The same bytes go to every socket, as Genesys sends one
// notification to every channel that subscribes.
func (s *Server) Publish(topic string, body any) (seq int64, sockets int) {
	s.mu.Lock()
	s.seq++
	seq = s.seq
	s.mu.Unlock()
	msg := compactJSON(map[string]any{
		"topicName": topic,
		"version":   "2",
		"eventBody": body,
		"metadata":  map[string]string{"CorrelationId": fmt.Sprintf("5e9c0000-0000-4000-8000-%012d", seq)},
	})
	return seq, s.PublishRaw(topic, msg)
}

// PublishRaw writes msg verbatim, as a notification of the concrete topic, to every connected
// socket whose channel subscribes to topic, and returns how many got it. Benchmarks use it to keep
// the fake's encoding cost out of the measurement.
func (s *Server) PublishRaw(topic string, msg []byte) int {
	s.mu.Lock()
	var targets []*socket
	for _, ch := range s.channels {
		if ch.sock != nil && ch.subscribed(topic) {
			targets = append(targets, ch.sock)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, so := range targets {
		if s.write(so, msg) == nil {
			n++
		}
	}
	return n
}

// SendRaw writes msg verbatim to every connected socket and returns how many got it.
func (s *Server) SendRaw(msg []byte) int {
	n := 0
	for _, so := range s.connected() {
		if s.write(so, msg) == nil {
			n++
		}
	}
	return n
}

// SendSocketClosing sends the v2.system.socket_closing notice Genesys sends before maintenance
// to every connected socket, and returns how many got it. Those sockets are closed (with
// StatusGoingAway) after the delay set with WithSocketClosingDelay, a minute by default, as
// Genesys closes them; their channels remain.
func (s *Server) SendSocketClosing() int {
	msg := compactJSON(map[string]any{
		"topicName": "v2.system.socket_closing",
		"version":   "2",
		"eventBody": map[string]string{"message": "The socket is closing for maintenance; connect a new channel."},
	})
	n := 0
	for _, so := range s.connected() {
		if s.write(so, msg) != nil {
			continue
		}
		n++
		if d := s.opts.socketClosingDelay; d >= 0 {
			s.closeLater(so, d)
		}
	}
	return n
}

// closeLater closes so after d, unless the server is closed first (it then closes every socket).
func (s *Server) closeLater(so *socket, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		delete(s.closings, t)
		s.mu.Unlock()
		_ = so.conn.Close(websocket.StatusGoingAway, "socket closing for maintenance")
		so.cancel()
	})
	s.closings[t] = struct{}{}
}

// Disconnect drops every connected socket without a close handshake and returns how many it
// dropped. The channels remain.
func (s *Server) Disconnect() int {
	socks := s.connected()
	for _, so := range socks {
		so.closeNow()
	}
	return len(socks)
}

// DisconnectTopic drops, without a close handshake, the socket of every channel subscribed to
// topic, and returns those channels' ids, oldest first. The channels remain, and may be connected
// again. Tests use it to break one of a client's channels while the others stay connected.
func (s *Server) DisconnectTopic(topic string) []string {
	s.mu.Lock()
	var (
		ids   []string
		socks []*socket
	)
	for _, ch := range s.channels {
		if ch.sock != nil && ch.subscribed(topic) {
			ids = append(ids, ch.id)
			socks = append(socks, ch.sock)
		}
	}
	s.mu.Unlock()
	for _, so := range socks {
		so.closeNow()
	}
	return ids
}

// Silence stops heartbeats and pongs on every socket connected now, as a socket that went quiet
// would; sockets connected later, to any channel, are not affected. It returns how many sockets
// went quiet.
func (s *Server) Silence() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for so := range s.sockets {
		so.silent = true
	}
	return len(s.sockets)
}

func (s *Server) connected() []*socket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.socketsLocked()
}

// WaitSubscribed blocks until at least n connected sockets have channels subscribed to topic, or
// ctx ends.
func (s *Server) WaitSubscribed(ctx context.Context, topic string, n int) error {
	return s.waitFor(ctx, func() bool {
		c := 0
		for _, ch := range s.channels {
			if ch.sock != nil && ch.subscribed(topic) {
				c++
			}
		}
		return c >= n
	})
}

// WaitConnected blocks until exactly n sockets are connected, or ctx ends.
func (s *Server) WaitConnected(ctx context.Context, n int) error {
	return s.waitFor(ctx, func() bool { return len(s.sockets) == n })
}

// waitFor blocks until cond, evaluated under the lock after every change, holds.
func (s *Server) waitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, changed := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return errors.Join(errors.New("genesystest: condition not reached"), ctx.Err())
		}
	}
}

func randomUUID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}
