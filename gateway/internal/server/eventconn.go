package server

import (
	"net"
	"strconv"
	"sync"
	"time"
)

const (
	// eventConnMaxPending is how much of a stream may wait for a client
	// that does not read; past it the client is treated as gone (it can
	// resume the reply with Last-Event-ID).
	eventConnMaxPending = 1 << 20
	// eventConnWriteTimeout bounds one write to a client.
	eventConnWriteTimeout = 30 * time.Second
)

// eventConn writes the rest of an event stream on an HTTP/1.x connection
// taken over from net/http after the first event (chat.go), so that a
// stream that waits holds no goroutine and no buffer: events are appended
// to pending, and a goroutine runs only while there is something to write.
// HTTP/1.1 answers go on in chunks, and end with the last chunk; HTTP/1.0
// answers end when the connection closes. The connection is closed at the
// end either way (the answer said Connection: close).
type eventConn struct {
	conn    net.Conn
	chunked bool
	gone    func() // the client is gone before the end: once, not under mu
	ended   func(written int64)

	mu      sync.Mutex
	pending []byte
	writing bool
	last    bool // the end is in pending
	dropped bool // too much pending: the client is let go
	closed  bool
	written int64
	hangup  func() // stops watching for a hang-up
}

func newEventConn(conn net.Conn, chunked bool, gone func(), ended func(written int64)) *eventConn {
	c := &eventConn{conn: conn, chunked: chunked, gone: gone, ended: ended}
	c.mu.Lock() // a hang-up may be seen before watchHangUp returns
	c.hangup = watchHangUp(conn, func() { c.fail() })
	c.mu.Unlock()
	return c
}

// push queues one event's bytes (none at the end); last ends the answer
// after them. It never blocks, and never calls gone.
func (c *eventConn) push(event []byte, last bool) {
	c.mu.Lock()
	if c.closed || c.last || c.dropped {
		c.mu.Unlock()
		return
	}
	if len(event) > 0 {
		if c.chunked {
			c.pending = strconv.AppendUint(c.pending, uint64(len(event)), 16)
			c.pending = append(c.pending, '\r', '\n')
			c.pending = append(c.pending, event...)
			c.pending = append(c.pending, '\r', '\n')
		} else {
			c.pending = append(c.pending, event...)
		}
	}
	if last {
		c.last = true
		if c.chunked {
			c.pending = append(c.pending, "0\r\n\r\n"...)
		}
	}
	if len(c.pending) > eventConnMaxPending {
		c.dropped = true
		c.mu.Unlock()
		// Not here: push runs under the stream's lock, which gone takes.
		go c.fail()
		return
	}
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.drain()
	}
}

// drain writes what is pending until nothing is, then closes the
// connection if the end was written.
func (c *eventConn) drain() {
	var buf []byte
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		if len(c.pending) == 0 {
			c.pending = nil // a stream that waits keeps no buffer
			c.writing = false
			last := c.last
			c.mu.Unlock()
			if last {
				c.finish(false)
			}
			return
		}
		// Swap the buffers: events go on arriving while this one is written.
		buf, c.pending = c.pending, buf[:0]
		c.mu.Unlock()
		_ = c.conn.SetWriteDeadline(time.Now().Add(eventConnWriteTimeout))
		n, err := c.conn.Write(buf)
		c.mu.Lock()
		c.written += int64(n)
		c.mu.Unlock()
		if err != nil {
			c.fail()
			return
		}
		if cap(buf) > 64<<10 {
			buf = nil // a burst is over; keep no large buffer
		}
	}
}

// fail: the client hung up, stopped reading, or a write failed.
func (c *eventConn) fail() { c.finish(true) }

func (c *eventConn) finish(failed bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.pending = nil
	written, stopWatching := c.written, c.hangup
	c.mu.Unlock()
	// No longer watched before it is closed: its descriptor may be reused.
	stopWatching()
	_ = c.conn.Close()
	if failed {
		c.gone()
	}
	c.ended(written)
}
