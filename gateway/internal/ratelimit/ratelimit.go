// Package ratelimit limits how often each client may do something: one token
// bucket (golang.org/x/time/rate) per client key, in a table of bounded size.
//
//	l := ratelimit.New(30, 10, 10000) // 30 a minute, bursts of 10
//	if ok, retryAfter := l.Allow(clientIP); !ok { ... }
//
// A client's bucket is forgotten once it has been idle long enough to be full
// again (burst / rate), which loses nothing: a new bucket is full too. The
// table never holds more than its maximum; when it is full the least recently
// seen client is forgotten first, and it comes back with a full bucket.
package ratelimit

import (
	"container/list"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is safe for concurrent use. A nil *Limiter allows everything.
type Limiter struct {
	limit rate.Limit
	burst int
	max   int
	idle  time.Duration
	now   func() time.Time

	mu      sync.Mutex
	clients map[string]*list.Element // of *client
	lru     *list.List               // front: most recently seen
}

type client struct {
	key    string
	bucket *rate.Limiter
	seen   time.Time
}

// New returns a Limiter that lets each client do perMinute things a minute
// on average, and up to burst at once, tracking at most maxClients clients.
// perMinute <= 0 disables the limit (New returns nil); burst and maxClients
// are at least 1.
func New(perMinute, burst, maxClients int) *Limiter {
	return newAt(perMinute, burst, maxClients, time.Now)
}

func newAt(perMinute, burst, maxClients int, now func() time.Time) *Limiter {
	if perMinute <= 0 {
		return nil
	}
	burst = max(burst, 1)
	limit := rate.Limit(float64(perMinute) / 60)
	return &Limiter{
		limit:   limit,
		burst:   burst,
		max:     max(maxClients, 1),
		idle:    time.Duration(math.Ceil(float64(burst) / float64(limit) * float64(time.Second))),
		now:     now,
		clients: map[string]*list.Element{},
		lru:     list.New(),
	}
}

// Allow takes a token from key's bucket. When there is none it returns false
// and how long until there is one (more than zero).
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgetIdle(now)
	c := l.client(key, now)
	c.seen = now
	r := c.bucket.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // A refused request costs nothing.
		return false, d
	}
	return true, 0
}

// Len returns how many clients the table holds.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// client returns key's entry, moved to the front, making one (and making
// room for it) if needed. l.mu is held.
func (l *Limiter) client(key string, now time.Time) *client {
	if e, ok := l.clients[key]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*client)
	}
	for len(l.clients) >= l.max {
		l.remove(l.lru.Back())
	}
	c := &client{key: key, bucket: rate.NewLimiter(l.limit, l.burst), seen: now}
	l.clients[key] = l.lru.PushFront(c)
	return c
}

// forgetIdle drops the clients whose buckets are full again. l.mu is held.
func (l *Limiter) forgetIdle(now time.Time) {
	for e := l.lru.Back(); e != nil && now.Sub(e.Value.(*client).seen) >= l.idle; e = l.lru.Back() {
		l.remove(e)
	}
}

func (l *Limiter) remove(e *list.Element) {
	delete(l.clients, e.Value.(*client).key)
	l.lru.Remove(e)
}
