package server

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	spb "google.golang.org/genproto/googleapis/rpc/status"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
)

// multiplexCalls is how many Multiplex calls the gateway keeps open to the
// message service. New streams take them in turn, and round_robin puts
// each call on the next replica, so the streams of a few replicas spread
// over them.
const multiplexCalls = 8

// muxStreamMaxQueued is how many items may wait for a stream's handler
// (over HTTP/2, where the handler relays them) before its client is let go.
const muxStreamMaxQueued = 4096

// defaultMultiplexCallAge is how long a Multiplex call takes new streams
// (Options.MultiplexCallAge). Then the next stream opens a new call, which
// round_robin may put on another replica (a replica added since is used
// within this long), and the old call ends once its streams have.
const defaultMultiplexCallAge = time.Minute

// multiplexer carries the gateway's event streams (Chat, Regenerate,
// StreamReply) on a few Multiplex calls of chat.v1.EventStreams instead of
// one call each: a reply in progress costs the gateway no goroutine and no
// gRPC stream of its own, and the message service no call (docs/
// architecture.md "Event streams"). A slot's call opens on the first
// stream that needs it, again after it breaks, and again once it is older
// than maxAge; a broken call ends each of its streams with its error.
type multiplexer struct {
	slots [multiplexCalls]muxSlot
	next  atomic.Uint32
}

func newMultiplexer(client chatv1.EventStreamsClient, maxAge time.Duration) *multiplexer {
	m := &multiplexer{}
	for i := range m.slots {
		m.slots[i].client, m.slots[i].maxAge = client, maxAge
	}
	return m
}

// muxSlot is one of the multiplexer's places for a call: the call that
// takes its new streams.
type muxSlot struct {
	client chatv1.EventStreamsClient
	maxAge time.Duration

	mu      sync.Mutex
	current *muxCall // nil: none open
}

// muxCall is one Multiplex call and the streams open on it.
type muxCall struct {
	slot   *muxSlot
	stream grpc.BidiStreamingClient[chatv1.MultiplexRequest, chatv1.MultiplexResponse]
	opened time.Time

	mu      sync.Mutex
	streams map[uint64]*muxStream
	nextID  uint64
	retired bool // takes no new streams; half-closed once it has none
	broken  bool
	closing bool // CloseSend is sent, or being sent
	closes  int  // close requests not yet sent: CloseSend waits for them

	sendMu sync.Mutex // grpc-go allows one sender at a time
}

// streamItem is what a stream delivers: an event, or its end (ev nil) with
// the status its own call would have ended with (err nil: OK).
type streamItem struct {
	ev  *chatv1.ChatEvent
	err error
}

func (it streamItem) isEnd() bool { return it.ev == nil }

// muxStream is one event stream on a call. Until a sink is attached its
// items queue for next; then each goes to the sink as it arrives, in
// order, on the call's receiving goroutine.
type muxStream struct {
	call *muxCall
	id   uint64

	mu     sync.Mutex
	queue  []streamItem
	ready  chan struct{} // a token when the queue grew
	sink   func(streamItem)
	ended  bool // its end arrived, or the call broke
	closed bool // the client is gone
}

// open starts a stream on the next slot's call: the gRPC method of `open`,
// with its authorization and request id. The error is the call's, when it
// could not be opened or written to.
func (m *multiplexer) open(open *chatv1.OpenEventStream) (*muxStream, error) {
	// A call that broke is replaced once its receiver has seen it; until
	// then a stream registered on it fails to send and tries the next.
	var err error
	for range 2 {
		slot := &m.slots[m.next.Add(1)%multiplexCalls]
		var s *muxStream
		if s, err = slot.register(); err != nil {
			return nil, err
		}
		if err = s.call.send(&chatv1.MultiplexRequest{Stream: s.id, Action: &chatv1.MultiplexRequest_Open{Open: open}}); err == nil {
			return s, nil
		}
		s.close()
	}
	return nil, status.Errorf(codes.Unavailable, "opening an event stream: %v", err)
}

// register numbers a new stream on the slot's call, opening a call first
// when none is open, the current one broke, or it is too old.
func (slot *muxSlot) register() (*muxStream, error) {
	slot.mu.Lock()
	defer slot.mu.Unlock()
	for {
		c := slot.current
		if c == nil || time.Since(c.opened) > slot.maxAge {
			if c != nil {
				c.retire()
			}
			// The call outlives the request that opens it.
			ctx, cancel := context.WithCancel(context.Background())
			st, err := slot.client.Multiplex(ctx)
			if err != nil {
				cancel()
				return nil, err
			}
			c = &muxCall{slot: slot, stream: st, opened: time.Now(), streams: make(map[uint64]*muxStream)}
			slot.current = c
			go c.receive(cancel)
		}
		if s := c.add(); s != nil {
			return s, nil
		}
		slot.current = nil // it broke meanwhile
	}
}

// add numbers a new stream on the call; nil once it broke.
func (c *muxCall) add() *muxStream {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken {
		return nil
	}
	c.nextID++
	s := &muxStream{call: c, id: c.nextID, ready: make(chan struct{}, 1)}
	c.streams[s.id] = s
	return s
}

func (c *muxCall) send(req *chatv1.MultiplexRequest) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(req)
}

// start opens a stream and waits for its first item. A stream refused
// UNAVAILABLE before its first event (a message service that is stopping
// refuses new streams, and its calls end) started nothing there: its call
// takes no more streams, and the stream is opened once more on the next
// slot. The error is ctx's, after the stream was closed, or open's.
func (m *multiplexer) start(ctx context.Context, open *chatv1.OpenEventStream) (*muxStream, streamItem, error) {
	for attempt := 0; ; attempt++ {
		s, err := m.open(open)
		if err != nil {
			return nil, streamItem{}, err
		}
		first, err := s.next(ctx)
		if err != nil {
			s.close()
			return nil, streamItem{}, err
		}
		if attempt == 0 && first.isEnd() && status.Code(first.err) == codes.Unavailable {
			s.call.slot.retireCall(s.call)
			continue
		}
		return s, first, nil
	}
}

// retireCall takes c out of the slot's service, if it is still its call.
func (slot *muxSlot) retireCall(c *muxCall) {
	slot.forget(c)
	c.retire()
}

// forget: the slot's next stream opens a new call, if c is still its call.
func (slot *muxSlot) forget(c *muxCall) {
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.current == c {
		slot.current = nil
	}
}

// retire: the call takes no new streams, and ends once it has none.
func (c *muxCall) retire() {
	c.mu.Lock()
	c.retired = true
	c.mu.Unlock()
	c.closeIfDone()
}

// closeIfDone half-closes a retired call that has no stream left: the
// message service then finishes it.
func (c *muxCall) closeIfDone() {
	c.mu.Lock()
	done := c.retired && !c.broken && !c.closing && len(c.streams) == 0 && c.closes == 0
	if done {
		c.closing = true
	}
	c.mu.Unlock()
	if done {
		go func() {
			c.sendMu.Lock()
			defer c.sendMu.Unlock()
			_ = c.stream.CloseSend()
		}()
	}
}

// receive hands the events of the call to their streams until the call
// ends, then ends the streams still open on it with its status.
func (c *muxCall) receive(cancel context.CancelFunc) {
	defer cancel()
	for {
		resp, err := c.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = status.Error(codes.Unavailable, "the message service ended the event streams' call")
			}
			c.mu.Lock()
			c.broken = true
			open := c.streams
			c.streams = nil
			c.mu.Unlock()
			c.slot.forget(c)
			for _, s := range open {
				s.deliver(streamItem{err: err})
			}
			return
		}
		for _, ev := range resp.GetEvents() {
			end := ev.GetEnd()
			c.mu.Lock()
			s := c.streams[ev.GetStream()]
			if end != nil {
				delete(c.streams, ev.GetStream())
			}
			c.mu.Unlock()
			if s == nil {
				continue // closed by its client meanwhile
			}
			if end != nil {
				s.deliver(streamItem{err: endStatus(end)})
				c.closeIfDone()
			} else {
				s.deliver(streamItem{ev: ev.GetEvent()})
			}
		}
	}
}

// endStatus is the error of a stream's end (nil: OK), with its details.
func endStatus(end *chatv1.StreamEnd) error {
	if end.GetCode() == int32(codes.OK) {
		return nil
	}
	st := &spb.Status{}
	if len(end.GetDetails()) == 0 || proto.Unmarshal(end.GetDetails(), st) != nil {
		st = &spb.Status{}
	}
	st.Code, st.Message = end.GetCode(), end.GetMessage()
	return status.FromProto(st).Err()
}

func (s *muxStream) deliver(it streamItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.closed {
		return
	}
	s.ended = it.isEnd()
	if s.sink != nil {
		s.sink(it)
		return
	}
	if len(s.queue) >= muxStreamMaxQueued {
		// A client that does not read (served by its handler, over
		// HTTP/2): it is let go, as eventConn lets go of its own.
		s.queue = []streamItem{{err: status.Error(codes.ResourceExhausted, "the client reads the events too slowly")}}
		s.ended = true
	} else {
		s.queue = append(s.queue, it)
	}
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// take returns the first queued item, if any.
func (s *muxStream) take() (streamItem, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return streamItem{}, false
	}
	it := s.queue[0]
	s.queue[0] = streamItem{}
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		s.queue = nil // keep no capacity while the stream waits
	}
	return it, true
}

// next waits for the next item; ctx's error when it ends first.
func (s *muxStream) next(ctx context.Context) (streamItem, error) {
	for {
		if it, ok := s.take(); ok {
			return it, nil
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return streamItem{}, ctx.Err()
		}
	}
}

// attach sends the items queued so far, then every item as it arrives, to
// sink, in order and one at a time. sink must not block.
func (s *muxStream) attach(sink func(streamItem)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range s.queue {
		sink(it)
	}
	s.queue = nil
	s.sink = sink
}

// close tells the message service that the stream's client is gone. Its
// reply goes on; nothing more of it is delivered.
func (s *muxStream) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.queue = nil
	s.mu.Unlock()
	// Still on the call unless its end arrived or the call broke.
	c := s.call
	c.mu.Lock()
	_, open := c.streams[s.id]
	delete(c.streams, s.id)
	if open {
		c.closes++
	}
	c.mu.Unlock()
	if open {
		// Not under a lock, and never in the way of the caller: Send may
		// wait for the call's flow control.
		go func() {
			_ = c.send(&chatv1.MultiplexRequest{Stream: s.id, Action: &chatv1.MultiplexRequest_Close{Close: true}})
			c.mu.Lock()
			c.closes--
			c.mu.Unlock()
			c.closeIfDone()
		}()
	}
}
