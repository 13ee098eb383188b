package server

import (
	"net"
	"sync"
	"syscall"
)

// hangUps notices clients of taken-over event streams that hang up, with
// one goroutine and one epoll set for all of them, instead of a goroutine
// reading each connection. A descriptor is registered for EPOLLRDHUP
// (the client closed or shut down its side) and errors, never for data,
// once (EPOLLONESHOT); the Go runtime's own poller keeps it as well.
type hangUps struct {
	epfd int

	mu    sync.Mutex
	seq   int32
	conns map[int32]hangUpEntry // by descriptor
}

type hangUpEntry struct {
	seq int32 // tells a reused descriptor from the one registered
	fn  func()
}

var (
	hangUpsOnce sync.Once
	hangUpsSet  *hangUps // nil when epoll is not available
)

// watchHangUp calls fn (once, on the watcher's goroutine, where it must not
// block) when the client of conn hangs up, until stop is called; stop must
// be called before conn is closed. Without epoll it watches nothing, and a
// client that hangs up is noticed at the next write.
func watchHangUp(conn net.Conn, fn func()) (stop func()) {
	hangUpsOnce.Do(func() { hangUpsSet = newHangUps() })
	sc, ok := conn.(syscall.Conn)
	if hangUpsSet == nil || !ok {
		return func() {}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	h := hangUpsSet
	var fd int32 = -1
	var seq int32
	_ = raw.Control(func(d uintptr) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.seq++
		seq = h.seq
		ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(d), Pad: seq}
		if syscall.EpollCtl(h.epfd, syscall.EPOLL_CTL_ADD, int(d), &ev) == nil {
			fd = int32(d)
			h.conns[fd] = hangUpEntry{seq: seq, fn: fn}
		}
	})
	if fd < 0 {
		return func() {}
	}
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if e, ok := h.conns[fd]; ok && e.seq == seq {
			delete(h.conns, fd)
			_ = syscall.EpollCtl(h.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
		}
	}
}

func newHangUps() *hangUps {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	h := &hangUps{epfd: epfd, conns: make(map[int32]hangUpEntry)}
	go h.run()
	return h
}

func (h *hangUps) run() {
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(h.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			h.mu.Lock()
			e, ok := h.conns[ev.Fd]
			if ok && e.seq == ev.Pad {
				delete(h.conns, ev.Fd)
				_ = syscall.EpollCtl(h.epfd, syscall.EPOLL_CTL_DEL, int(ev.Fd), nil)
			} else {
				ok = false
			}
			h.mu.Unlock()
			if ok {
				e.fn()
			}
		}
	}
}
