package ratelimit

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestBurstThenRate(t *testing.T) {
	c := newClock()
	l := newAt(30, 10, 100, c.now) // One token every 2 s.
	for i := range 10 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, retry := l.Allow("a")
	if ok || retry != 2*time.Second {
		t.Fatalf("over the burst: ok=%v retryAfter=%v, want false 2s", ok, retry)
	}
	// Refusals cost nothing: the token still comes after 2 s.
	c.advance(1500 * time.Millisecond)
	if ok, retry := l.Allow("a"); ok || retry != 500*time.Millisecond {
		t.Fatalf("ok=%v retryAfter=%v, want false 500ms", ok, retry)
	}
	c.advance(500 * time.Millisecond)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("refused after the refill")
	}
	// Clients are independent.
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another client refused")
	}
}

func TestNilAndDisabled(t *testing.T) {
	var l *Limiter
	if ok, _ := l.Allow("a"); !ok || l.Len() != 0 {
		t.Error("a nil Limiter refused")
	}
	if New(0, 10, 10) != nil {
		t.Error("New(0, ...) is not nil")
	}
}

// Many goroutines on one client: exactly burst get through.
func TestConcurrentClientGetsExactlyBurst(t *testing.T) {
	c := newClock()
	l := newAt(1, 10, 100, c.now)
	var allowed atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			if ok, retry := l.Allow("a"); ok {
				allowed.Add(1)
			} else if retry <= 0 {
				t.Errorf("refused with retryAfter %v", retry)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := allowed.Load(); got != 10 {
		t.Errorf("%d allowed, want 10", got)
	}
}

// The table is bounded whatever the number of clients, and idle clients are
// forgotten.
func TestTableIsBounded(t *testing.T) {
	c := newClock()
	l := newAt(30, 10, 100, c.now)
	for i := range 10000 {
		l.Allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		if n := l.Len(); n > 100 {
			t.Fatalf("%d clients tracked, want at most 100", n)
		}
	}
	if n := l.Len(); n != 100 {
		t.Errorf("%d clients tracked, want 100", n)
	}
	// Concurrent distinct clients.
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 1000 {
				l.Allow(fmt.Sprintf("g%d-%d", g, i))
			}
		})
	}
	wg.Wait()
	if n := l.Len(); n > 100 {
		t.Errorf("%d clients tracked, want at most 100", n)
	}

	// A full bucket (10 tokens at 30/min: 20 s idle) is forgotten.
	c.advance(19 * time.Second)
	l.Allow("fresh")
	if n := l.Len(); n != 100 {
		t.Errorf("before the idle time: %d clients, want 100", n)
	}
	c.advance(time.Second)
	l.Allow("fresh")
	if n := l.Len(); n != 1 {
		t.Errorf("after the idle time: %d clients, want 1", n)
	}
}

// A client that is forgotten while its bucket is not full (the table was
// full) comes back with a full one; the most recently seen client keeps its
// state.
func TestEvictionKeepsRecentClients(t *testing.T) {
	c := newClock()
	l := newAt(1, 1, 2, c.now)
	l.Allow("a")
	l.Allow("b")
	if ok, _ := l.Allow("b"); ok {
		t.Fatal("b's second request allowed")
	}
	l.Allow("c") // Forgets a, the least recently seen.
	if ok, _ := l.Allow("b"); ok {
		t.Error("b was forgotten")
	}
}
