package e2e

// Durable replies (SPEC "Durable replies", docs/api.md): a reply started is
// generated to its end whatever happens to the client; its text is stored
// while it grows; GET .../messages/{id}/stream resumes it after an offset
// (Last-Event-ID or ?after=) on any replica; :cancel stops it on any
// replica; a crashed replica's replies become incomplete; the per-user cap
// counts replies in progress across replicas; PROVIDER_MODELS bounds the
// models a request may name. Also: SIGTERM stores the replies in progress
// incomplete; deleting or forking a reply in progress; a replica whose
// database session is cut keeps its replies.
//
// Every wait is bounded: GETs polled until a deadline, streams read with
// streamClient (60 s for a whole stream), the provider's hang-up awaited
// for 2 s.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// durableStack is a stack of the test's own whose message service asks a
// fake provider of its own (both stopped at the end of the test), with the
// settings of ChatStack that matter here and extra message-service ones.
func durableStack(t *testing.T, messageEnv ...string) (*Stack, *FakeProvider) {
	t.Helper()
	p := NewFakeProvider()
	// Registered first, so it runs last: the provider's handlers end when
	// the message services hang up.
	t.Cleanup(p.Close)
	env := append([]string{
		"PROVIDER=openai", "PROVIDER_BASE_URL=" + p.URL + "/v1",
		"PROVIDER_API_KEY=" + providerKey, "PROVIDER_MODEL=fake-model-1",
		"PROVIDER_IDLE_TIMEOUT=20s",
		// Recovery every second, of replies not stored for 3 s (a live
		// replica stores each of its replies about every 500 ms).
		"REPLY_RECOVERY_INTERVAL=1s", "REPLY_RECOVERY_GRACE=3s",
	}, messageEnv...)
	return startRobustStack(t, map[string][]string{"message": env}), p
}

// startMessageReplica starts one more chat-message on s's database, with
// s's settings and extra ones, and a gateway in front of it; both stop at
// the end of the test. It returns the replica's processes (for Signal,
// Logs) and the gateway (for calls).
func startMessageReplica(t *testing.T, s *Stack, extraEnv ...string) (replica, gateway *Stack) {
	t.Helper()
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	env := append(append(append([]string{}, s.env["message"]...), "GRPC_LISTEN="+addr), extraEnv...)
	replica = &Stack{procs: map[string]*exec.Cmd{}, logs: map[string]*logBuffer{},
		env: map[string][]string{"message": env}, binaries: map[string]string{"message": s.binaries["message"]}}
	if err := replica.start("message", s.binaries["message"], env); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopFast(replica) })
	// The gateway's own port comes from the kernel too: asked for before
	// the replica had bound addr, it was addr once (the gateway then spoke
	// to itself and never became ready). Once the replica listens, the
	// kernel cannot give addr out.
	if err := waitListening(replica, "message", addr, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The gateway's /readyz waits for the replica too.
	gateway = s.StartGateway(t, "MESSAGE_ADDR="+addr)
	return replica, gateway
}

// waitListening waits until process name of s accepts connections on addr.
func waitListening(s *Stack, name, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		if alive, why := s.Alive(name); !alive {
			return fmt.Errorf("%s exited before listening on %s (%s): %s", name, addr, why, tail(s.Logs(name), 1500))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not listening on %s after %v: %v", name, addr, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cancelReply POSTs :cancel and expects 200 with a message.
func cancelReply(t *testing.T, s *Stack, a Account, convID, id string) map[string]any {
	t.Helper()
	r := s.Do(t, "POST", messagePath(convID, id)+":cancel", map[string]any{}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusOK, "cancel "+id)
	return r.JSON
}

// expectProviderHangUp waits up to limit for the service to close the
// provider request of marker.
func expectProviderHangUp(t *testing.T, p *FakeProvider, marker string, limit time.Duration, what string) {
	t.Helper()
	req := p.Request(marker)
	if req == nil {
		t.Fatalf("the provider saw no request for %q", marker)
	}
	start := time.Now()
	select {
	case <-req.cancelled:
		t.Logf("%s: the provider request ended %v later", what, time.Since(start).Round(time.Millisecond))
	case <-time.After(limit):
		t.Errorf("%s: the provider request is still open %v later", what, limit)
	}
}

// resumePath is the StreamReply route of a message, with a query or "".
func resumePath(convID, id, query string) string {
	path := messagePath(convID, id) + "/stream"
	if query != "" {
		path += "?" + query
	}
	return path
}

// fromCodePoint is text after its first n code points.
func fromCodePoint(text string, n int) string {
	runes := []rune(text)
	if n > len(runes) {
		return ""
	}
	return string(runes[n:])
}

// isPrefix reports whether the stored text is a prefix of the whole one.
func isPrefix(prefix, whole string) bool { return strings.HasPrefix(whole, prefix) }

// (a) A client that hangs up mid-reply finds the reply complete later, with
// all of its text; while it runs, its text is stored as it grows.
func TestDurableReplyOutlivesTheClientAndIsStoredAsItGrows(t *testing.T) {
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	convID := newConversation(t, s, a)
	const chunks = 40 // 40 pieces 50 ms apart: about 2 s
	content := unique("Long story scenario:drip chunks:40 every:50ms")
	whole := dripText(chunks)
	c := s.OpenChat(t, a.Access, convID, content, true)
	openOK(t, c, true)
	user := c.Expect(t, "message")
	reply := expectStarted(t, c, convID, Str(user, "id"), "fake-model-1")
	id := Str(reply, "id")
	for i := 0; i < 3; i++ {
		c.Expect(t, "delta")
	}
	read, _, _, _ := c.Deltas()
	c.Resp.Body.Close() // the client hangs up after three pieces
	// The reply still runs, and holds the user's only slot.
	busy := s.Do(t, "POST", "/v1/conversations/"+convID+"/chat", map[string]any{"content": "meanwhile scenario:ok"}, Bearer(a.Access)...)
	ExpectError(t, busy, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED")

	// Polled until it ends: every stored text is a prefix of the whole one
	// and of the next one, and some partial text is seen in progress
	// (stored at least every 500 ms, the reply lasts about 2 s).
	var partials []string
	last := ""
	stored := waitForMessage(t, s, a, convID, id, 20*time.Second, "the reply ends after the client hung up",
		func(m map[string]any) bool {
			text := Str(m, "content")
			if !isPrefix(last, text) {
				t.Errorf("the stored text shrank or changed: %q, then %q", last, text)
			}
			last = text
			if Str(m, "status") == "in_progress" && text != "" && text != whole {
				partials = append(partials, text)
			}
			return Str(m, "status") != "in_progress"
		})
	if Str(stored, "status") != "complete" || Str(stored, "content") != whole {
		t.Fatalf("after the client hung up, the reply is %s %q, want complete %q", Str(stored, "status"), Str(stored, "content"), whole)
	}
	if !isPrefix(read, whole) {
		t.Errorf("the client read %q, not a prefix of the stored reply", read)
	}
	if len(partials) == 0 {
		t.Errorf("no partial text was ever stored in progress during a 2 s reply (stored at least every 500 ms)")
	}
	for _, p := range partials {
		if !isPrefix(p, whole) {
			t.Errorf("partial text %q is not a prefix of the reply", p)
		}
	}
	if title := Str(conversation(t, s, a, convID), "title"); title == "" {
		t.Errorf("the conversation was not named after its first complete reply")
	}
	// The finished reply no longer holds the user's only slot.
	chatTurn(t, s, a, convID, map[string]any{"content": unique("Next scenario:ok")}, false)

	// Regenerate is as durable: a new version whose client hangs up after
	// its first piece is complete later.
	r := s.OpenStream(t, a.Access, messagePath(convID, id)+":regenerate", map[string]any{}, false)
	openOK(t, r, false)
	again := Str(expectStarted(t, r, convID, Str(user, "id"), "fake-model-1"), "id")
	r.Expect(t, "delta")
	r.Resp.Body.Close()
	regenerated := waitForMessage(t, s, a, convID, again, 20*time.Second, "the regenerated reply ends after the client hung up",
		func(m map[string]any) bool { return Str(m, "status") != "in_progress" })
	if Str(regenerated, "status") != "complete" || Str(regenerated, "content") != whole {
		t.Errorf("the regenerated reply is %s %q, want complete %q", Str(regenerated, "status"), Str(regenerated, "content"), whole)
	}
}

// (b) Resume at an offset: the text of the first stream up to its last SSE
// id and the text of the resumed stream make the stored reply, byte for
// byte; the same with ?after= over NDJSON.
func TestDurableResumeAtTheLastEventIDGivesTheRestOfTheReply(t *testing.T) {
	s, _ := ChatStack(t)
	for _, tc := range []struct {
		name string
		sse  bool
	}{{"Last-Event-ID over SSE", true}, {"after over NDJSON", false}} {
		t.Run(tc.name, func(t *testing.T) {
			a := s.NewAccount(t)
			convID := newConversation(t, s, a)
			const chunks = 40
			c := s.OpenChat(t, a.Access, convID, unique("Resume me scenario:drip chunks:40 every:50ms"), tc.sse)
			openOK(t, c, tc.sse)
			user := c.Expect(t, "message")
			id := Str(expectStarted(t, c, convID, Str(user, "id"), "fake-model-1"), "id")
			var last Event
			for i := 0; i < 4; i++ {
				last = c.ExpectEvent(t, "delta")
			}
			c.Resp.Body.Close()
			before, first, end, _ := c.Deltas()
			if first != 0 {
				t.Errorf("the first delta's offset is %d, want 0", first)
			}
			if tc.sse && last.ID != strconv.FormatInt(end, 10) {
				t.Fatalf("last SSE id %q, want %d", last.ID, end)
			}

			var r *ChatStream
			if tc.sse {
				r = s.OpenReplyStream(t, a.Access, resumePath(convID, id, ""), true, "Last-Event-ID", last.ID)
			} else {
				r = s.OpenReplyStream(t, a.Access, resumePath(convID, id, fmt.Sprint("after=", end)), false)
			}
			defer r.Resp.Body.Close()
			openOK(t, r, tc.sse)
			final := r.ReadToEnd(t)
			after, resumedAt, resumedEnd, count := r.Deltas()
			if count == 0 || resumedAt != end {
				t.Errorf("the resumed stream's first delta is at %d (%d deltas), want %d", resumedAt, count, end)
			}
			if final.Name != "done" || Str(final.Data, "message", "id") != id || Str(final.Data, "message", "status") != "complete" {
				t.Fatalf("the resumed stream ends with %s %v, want done with the complete reply %s", final.Name, final.Data, id)
			}
			stored := getOK(t, s, a, messagePath(convID, id))
			if joined := before + after; joined != Str(stored, "content") || joined != dripText(chunks) {
				t.Errorf("the two streams joined (%d + %d bytes) are %q, the stored reply %q", len(before), len(after), joined, Str(stored, "content"))
			}
			if Str(final.Data, "message", "content") != Str(stored, "content") || resumedEnd != int64(utf8.RuneCountInString(Str(stored, "content"))) {
				t.Errorf("done carries %q (stream ends at %d), stored %q", Str(final.Data, "message", "content"), resumedEnd, Str(stored, "content"))
			}
		})
	}
}

// (c) Resuming a reply that has ended sends the rest and done at once;
// the header wins over ?after=; a failed reply ends with an error event.
func TestDurableResumeAfterTheEndSendsTheRestAndDoneAtOnce(t *testing.T) {
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	convID := newConversation(t, s, a)
	_, reply := chatTurn(t, s, a, convID, map[string]any{"content": unique("Done already scenario:ok")}, true)
	id := Str(reply, "id")
	// A multi-byte reply: offsets count code points.
	c := s.OpenChat(t, a.Access, convID, unique("Wide scenario:drip chunks:3 every:10ms"), false)
	c.Expect(t, "message")
	wide := Str(c.Expect(t, "reply"), "id")
	if final := c.ReadToEnd(t); final.Name != "done" {
		t.Fatalf("the multi-byte reply ended with %s %v", final.Name, final.Data)
	}
	c.Resp.Body.Close()

	cases := []struct {
		name    string
		id      string
		query   string
		headers []string
		sse     bool
		rest    string
		at      int64
	}{
		{"no offset", id, "", nil, true, "Hello, world", 0},
		{"Last-Event-ID 5", id, "", []string{"Last-Event-ID", "5"}, true, ", world", 5},
		{"after=7 over NDJSON", id, "after=7", nil, false, "world", 7},
		{"an empty Last-Event-ID is none", id, "after=3", []string{"Last-Event-ID", ""}, true, "lo, world", 3},
		{"the header wins over after", id, "after=0", []string{"Last-Event-ID", "7"}, true, "world", 7},
		{"at the end", id, "", []string{"Last-Event-ID", "12"}, true, "", 12},
		{"multi-byte, after=4", wide, "after=4", nil, true, fromCodePoint(dripText(3), 4), 4},
		{"multi-byte, Last-Event-ID 9 over NDJSON", wide, "", []string{"Last-Event-ID", "9"}, false, fromCodePoint(dripText(3), 9), 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := s.OpenReplyStream(t, a.Access, resumePath(convID, tc.id, tc.query), tc.sse, tc.headers...)
			defer r.Resp.Body.Close()
			openOK(t, r, tc.sse)
			final := r.ReadToEnd(t)
			took := time.Since(start)
			text, at, _, count := r.Deltas()
			stored := getOK(t, s, a, messagePath(convID, tc.id))
			switch {
			case tc.rest == "" && count != 0:
				t.Errorf("%d deltas (%q) after the end of the reply", count, text)
			case tc.rest != "" && (count != 1 || text != tc.rest || at != tc.at):
				t.Errorf("deltas %q at %d (%d of them), want one: %q at %d", text, at, count, tc.rest, tc.at)
			}
			if final.Name != "done" || !sameJSON(final.Data["message"], stored) {
				t.Errorf("last event %s %v, want done with the stored message %v", final.Name, final.Data, stored)
			}
			if took > time.Second {
				t.Errorf("the stream of an ended reply took %v, want the rest and done at once", took)
			}
		})
	}

	t.Run("a failed reply ends with an error", func(t *testing.T) {
		c := s.OpenChat(t, a.Access, convID, unique("Break scenario:malformed"), true)
		c.Expect(t, "message")
		failed := Str(c.Expect(t, "reply"), "id")
		c.ReadToEnd(t)
		c.Resp.Body.Close()
		r := s.OpenReplyStream(t, a.Access, resumePath(convID, failed, "after=3"), true)
		defer r.Resp.Body.Close()
		openOK(t, r, true)
		final := r.ReadToEnd(t)
		if text, at, _, _ := r.Deltas(); text != "tial" || at != 3 {
			t.Errorf("the rest of the failed reply: %q at %d, want \"tial\" at 3", text, at)
		}
		if final.Name != "error" || Str(final.Data, "error", "code") == "" {
			t.Errorf("a failed reply's stream ends with %s %v, want an error event", final.Name, final.Data)
		}
	})
}

// (d) :cancel mid-reply answers the message incomplete with its text so
// far, ends the client's stream, and closes the provider request.
func TestDurableCancelStopsTheReplyAndTheProviderRequest(t *testing.T) {
	s, p := ChatStack(t)
	a := s.NewAccount(t)
	convID := newConversation(t, s, a)
	// 400 pieces 50 ms apart: 20 s unless cancelled.
	content := unique("Endless scenario:drip chunks:400 every:50ms")
	c := s.OpenChat(t, a.Access, convID, content, true)
	defer c.Resp.Body.Close()
	openOK(t, c, true)
	user := c.Expect(t, "message")
	id := Str(expectStarted(t, c, convID, Str(user, "id"), "fake-model-1"), "id")
	for i := 0; i < 3; i++ {
		c.Expect(t, "delta")
	}
	read, _, _, _ := c.Deltas()

	cancelled := cancelReply(t, s, a, convID, id)
	cancelledAt := time.Now()
	text := Str(cancelled, "content")
	if Str(cancelled, "id") != id || Str(cancelled, "status") != "incomplete" || !isPrefix(read, text) || !isPrefix(text, dripText(400)) {
		t.Errorf("cancel answered %v, want the reply incomplete with its text so far (at least %q)", cancelled, read)
	}
	expectProviderHangUp(t, p, content, 2*time.Second, "after :cancel")

	// The client's stream ends soon, its deltas being the stored text.
	final := c.ReadToEnd(t)
	if took := time.Since(cancelledAt); took > 2*time.Second {
		t.Errorf("the client's stream ended %v after the cancel", took)
	}
	streamed, _, _, _ := c.Deltas()
	if streamed != text {
		t.Errorf("the stream's deltas %q, the cancelled reply %q", streamed, text)
	}
	if final.Name == "done" && (Str(final.Data, "message", "status") != "incomplete" || Str(final.Data, "message", "content") != text) {
		t.Errorf("the stream ends with done %v, want the cancelled reply", final.Data)
	}

	// It stays as cancel left it; cancelling again answers it unchanged.
	stored := getOK(t, s, a, messagePath(convID, id))
	if !sameJSON(stored, cancelled) {
		t.Errorf("after the cancel the reply is %v, the cancel answered %v", stored, cancelled)
	}
	if again := cancelReply(t, s, a, convID, id); !sameJSON(again, stored) {
		t.Errorf("a second cancel answered %v, want the message unchanged %v", again, stored)
	}
	r := s.OpenReplyStream(t, a.Access, resumePath(convID, id, ""), true)
	if final := r.ReadToEnd(t); final.Name != "done" || Str(final.Data, "message", "status") != "incomplete" {
		t.Errorf("the stream of the cancelled reply ends with %s %v", final.Name, final.Data)
	}
	if all, _, _, _ := r.Deltas(); all != text {
		t.Errorf("the stream of the cancelled reply sends %q, want %q", all, text)
	}
	r.Resp.Body.Close()

	// The cancelled reply no longer holds the user's only slot; cancelling
	// a complete reply answers it unchanged.
	_, done := chatTurn(t, s, a, convID, map[string]any{"content": unique("After the cancel scenario:ok")}, true)
	if again := cancelReply(t, s, a, convID, Str(done, "id")); !sameJSON(again, getOK(t, s, a, messagePath(convID, Str(done, "id")))) ||
		Str(again, "status") != "complete" {
		t.Errorf("cancelling a complete reply answered %v", again)
	}
}

// (e) A message service killed mid-reply leaves the stored partial text,
// and a message service that starts again marks the reply incomplete.
func TestDurableCrashLeavesThePartialTextIncompleteAfterARestart(t *testing.T) {
	s, p := durableStack(t, "MAX_STREAMS_PER_USER=1")
	a := s.NewAccount(t)
	convID := newConversation(t, s, a)
	content := unique("Crash me scenario:drip chunks:400 every:50ms")
	c := s.OpenChat(t, a.Access, convID, content, true)
	defer c.Resp.Body.Close()
	openOK(t, c, true)
	user := c.Expect(t, "message")
	id := Str(expectStarted(t, c, convID, Str(user, "id"), "fake-model-1"), "id")
	for i := 0; i < 3; i++ {
		c.Expect(t, "delta")
	}
	seen := waitForMessage(t, s, a, convID, id, 3*time.Second, "some text stored while the reply runs",
		func(m map[string]any) bool { return Str(m, "status") == "in_progress" && Str(m, "content") != "" })

	if err := s.Signal("message", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.Wait("message")
	expectProviderHangUp(t, p, content, 2*time.Second, "after the message service was killed")
	// The client's stream ends with an error event.
	if final := c.ReadToEnd(t); final.Name != "error" {
		t.Errorf("the stream of a killed message service ends with %s %v, want an error event", final.Name, final.Data)
	}
	row := sqlOne(t, s, "SELECT status || '|' || content FROM messages WHERE id = '"+id+"'")
	status, partial, _ := strings.Cut(row, "|")
	if status != "in_progress" || !isPrefix(Str(seen, "content"), partial) || !isPrefix(partial, dripText(400)) {
		t.Fatalf("after the crash the stored reply is %s %q, want in_progress with at least %q", status, partial, Str(seen, "content"))
	}

	if err := s.Restart("message"); err != nil {
		t.Fatalf("restarting chat-message: %v", err)
	}
	stored := waitForMessage(t, s, a, convID, id, 10*time.Second, "the crashed reply becomes incomplete after a restart",
		func(m map[string]any) bool { return Str(m, "status") != "in_progress" })
	if Str(stored, "status") != "incomplete" || Str(stored, "content") != partial {
		t.Errorf("after the restart the reply is %s %q, want incomplete %q", Str(stored, "status"), Str(stored, "content"), partial)
	}
	r := s.OpenReplyStream(t, a.Access, resumePath(convID, id, ""), false)
	if final := r.ReadToEnd(t); final.Name != "done" || Str(final.Data, "message", "status") != "incomplete" {
		t.Errorf("the stream of the recovered reply ends with %s %v", final.Name, final.Data)
	}
	if text, _, _, _ := r.Deltas(); text != partial {
		t.Errorf("the stream of the recovered reply sends %q, want %q", text, partial)
	}
	r.Resp.Body.Close()
	// The recovered reply no longer holds the user's only slot.
	chatTurn(t, s, a, convID, map[string]any{"content": unique("Again scenario:ok")}, true)
}

// (f) A model that is neither the default nor in PROVIDER_MODELS is 400
// before anything is stored; the allowed ones are asked.
func TestDurableModelOutsidePROVIDER_MODELSIs400AndStoresNothing(t *testing.T) {
	s, p := ChatStack(t) // PROVIDER_MODELS=fake-model-2,fake-model-3
	a := s.NewAccount(t)
	convID := newConversation(t, s, a)
	rows := func() string {
		return sqlOne(t, s, "SELECT count(*) FROM messages WHERE conversation_id = '"+convID+"'")
	}
	convBefore := conversation(t, s, a, convID)
	for _, model := range []string{"gpt-4o", "fake-model-2 ", "FAKE-MODEL-1", "fake-model-2,fake-model-3", strings.Repeat("m", 200)} {
		r := s.Do(t, "POST", "/v1/conversations/"+convID+"/chat",
			map[string]any{"content": "which model? scenario:ok", "model": model}, Bearer(a.Access)...)
		expectInvalid(t, r, "model")
		if n := rows(); n != "0" {
			t.Fatalf("chat with model %.40q stored %s messages", model, n)
		}
	}
	if c := conversation(t, s, a, convID); !sameJSON(c, convBefore) {
		t.Errorf("the refused chats changed the conversation: %v, was %v", c, convBefore)
	}

	// The allowed models: the default by name and one of PROVIDER_MODELS.
	for _, model := range []string{"fake-model-1", "fake-model-3"} {
		content := unique("Use " + model + " scenario:ok")
		c := s.OpenStream(t, a.Access, "/v1/conversations/"+convID+"/chat", map[string]any{"content": content, "model": model}, true)
		openOK(t, c, true)
		user := c.Expect(t, "message")
		expectStarted(t, c, convID, Str(user, "id"), model)
		final := c.ReadToEnd(t)
		c.Resp.Body.Close()
		if final.Name != "done" || Str(final.Data, "message", "model") != model {
			t.Errorf("chat with model %s ended with %s %v", model, final.Name, final.Data)
		}
		if req := p.Request(content); req == nil || req.Model != model {
			t.Errorf("chat with model %s: the provider was asked %+v", model, req)
		}
	}

	// Regenerate: the same rule.
	last := Str(conversation(t, s, a, convID), "active_leaf_id")
	before := rows()
	r := s.Do(t, "POST", messagePath(convID, last)+":regenerate", map[string]any{"model": "gpt-4o"}, Bearer(a.Access)...)
	expectInvalid(t, r, "model")
	if n := rows(); n != before {
		t.Errorf("a refused regenerate stored messages: %s, then %s", before, n)
	}
	c := s.OpenStream(t, a.Access, messagePath(convID, last)+":regenerate", map[string]any{"model": "fake-model-2"}, false)
	openOK(t, c, false)
	expectStarted(t, c, convID, Str(getOK(t, s, a, messagePath(convID, last)), "parent_id"), "fake-model-2")
	if final := c.ReadToEnd(t); final.Name != "done" || Str(final.Data, "message", "model") != "fake-model-2" {
		t.Errorf("regenerate with fake-model-2 ended with %s %v", final.Name, final.Data)
	}
	c.Resp.Body.Close()
}

// (g) MAX_STREAMS_PER_USER counts replies in progress across replicas; a
// reply generated on one replica is resumed and cancelled through
// another; a replica that dies has its replies marked incomplete by the
// other one's periodic recovery.
func TestDurableRepliesAcrossTwoMessageServiceReplicas(t *testing.T) {
	s, p := durableStack(t, "MAX_STREAMS_PER_USER=2", "REPLY_RECOVERY_INTERVAL=1s")
	replicaB, b := startMessageReplica(t, s)
	a := s.NewAccount(t)
	conv1, conv2, conv3 := newConversation(t, s, a), newConversation(t, s, a), newConversation(t, s, a)

	// Two replies in progress through replica A.
	drip := unique("One scenario:drip chunks:80 every:40ms") // about 3.2 s
	c1 := s.OpenChat(t, a.Access, conv1, drip, true)
	defer c1.Resp.Body.Close()
	openOK(t, c1, true)
	c1.Expect(t, "message")
	r1 := Str(c1.Expect(t, "reply"), "id")
	slow := unique("Two scenario:slow")
	gate2 := p.Gate(slow)
	defer func() {
		select {
		case <-gate2:
		default:
			close(gate2)
		}
	}()
	c2 := s.OpenChat(t, a.Access, conv2, slow, true)
	defer c2.Resp.Body.Close()
	openOK(t, c2, true)
	c2.Expect(t, "message")
	r2 := Str(c2.Expect(t, "reply"), "id")
	c2.Expect(t, "delta")
	var last Event
	for i := 0; i < 3; i++ {
		last = c1.ExpectEvent(t, "delta")
	}
	before, _, _, _ := c1.Deltas()

	// A third through replica B (and through A) is 429, and stores nothing.
	for name, g := range map[string]*Stack{"replica B": b, "replica A": s} {
		r := g.Do(t, "POST", "/v1/conversations/"+conv3+"/chat", map[string]any{"content": "a third scenario:ok"}, Bearer(a.Access)...)
		ExpectError(t, r, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED")
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("429 through %s without Retry-After", name)
		}
	}
	if n := sqlOne(t, s, "SELECT count(*) FROM messages WHERE conversation_id = '"+conv3+"'"); n != "0" {
		t.Errorf("the refused chats stored %s messages", n)
	}

	// Reply 1, generated on A, resumed through B after the client hangs up.
	c1.Resp.Body.Close()
	r := b.OpenReplyStream(t, a.Access, resumePath(conv1, r1, ""), true, "Last-Event-ID", last.ID)
	openOK(t, r, true)
	final := r.ReadToEnd(t)
	r.Resp.Body.Close()
	after, at, _, count := r.Deltas()
	stored := getOK(t, b, a, messagePath(conv1, r1))
	if final.Name != "done" || Str(stored, "status") != "complete" || Str(stored, "content") != dripText(80) {
		t.Errorf("resumed through B: ends with %s %v; stored %v", final.Name, final.Data, stored)
	}
	if joined := before + after; joined != Str(stored, "content") || at != int64(utf8.RuneCountInString(before)) {
		t.Errorf("A's stream up to id %s and B's from %d (%d deltas) join to %q, the stored reply is %q", last.ID, at, count, joined, Str(stored, "content"))
	}

	// Reply 2, generated on A, cancelled through B once its text is stored.
	waitForMessage(t, b, a, conv2, r2, 3*time.Second, "reply 2's first piece is stored while in progress",
		func(m map[string]any) bool { return Str(m, "status") == "in_progress" && Str(m, "content") == "First" })
	cancelled := cancelReply(t, b, a, conv2, r2)
	if Str(cancelled, "status") != "incomplete" || Str(cancelled, "content") != "First" {
		t.Errorf("cancel through B answered %v, want incomplete \"First\"", cancelled)
	}
	expectProviderHangUp(t, p, slow, 2*time.Second, "after :cancel through the other replica")
	if final := c2.ReadToEnd(t); final.Name == "done" && Str(final.Data, "message", "status") != "incomplete" {
		t.Errorf("A's stream of the reply cancelled through B ends with %v", final.Data)
	}
	if got := getOK(t, s, a, messagePath(conv2, r2)); Str(got, "status") != "incomplete" || Str(got, "content") != "First" {
		t.Errorf("after A stopped, the reply cancelled through B is %v", got)
	}

	// Both slots are free again: a chat through B works.
	chatTurn(t, b, a, conv3, map[string]any{"content": unique("Now through B scenario:ok")}, true)

	// Eight chats at once, half through each replica: two start, the
	// others are 429.
	const burst = 8
	var (
		started   []*ChatStream
		refused   int
		problems  failures
		mu        sync.Mutex
		burstConv = make([]string, burst)
		markers   = make([]string, burst)
	)
	for i := range burstConv {
		burstConv[i] = newConversation(t, s, a)
		markers[i] = unique(fmt.Sprintf("Burst %d scenario:slow", i))
		p.Gate(markers[i])
	}
	parallel(burst, burst, func(i int) {
		g := s
		if i%2 == 1 {
			g = b
		}
		body, _ := json.Marshal(map[string]any{"content": markers[i]})
		c, err := g.openEvents("POST", "/v1/conversations/"+burstConv[i]+"/chat", string(body), true, Bearer(a.Access)...)
		if err != nil {
			problems.add("burst chat %d: %v", i, err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch c.Resp.StatusCode {
		case http.StatusOK:
			started = append(started, c)
		case http.StatusTooManyRequests:
			refused++
			c.Resp.Body.Close()
		default:
			raw, _ := io.ReadAll(c.Resp.Body)
			c.Resp.Body.Close()
			problems.add("burst chat %d: status %d %s", i, c.Resp.StatusCode, raw)
		}
	})
	problems.report(t, "a burst of chats across two replicas")
	if len(started) != 2 || refused != burst-2 {
		t.Errorf("a burst of %d chats across two replicas with MAX_STREAMS_PER_USER=2: %d started, %d refused; want 2 and %d",
			burst, len(started), refused, burst-2)
	}
	for _, m := range markers {
		close(p.Gate(m))
	}
	for _, c := range started {
		c.Expect(t, "message")
		c.Expect(t, "reply")
		if final := c.ReadToEnd(t); final.Name != "done" {
			t.Errorf("a chat of the burst ended with %s %v", final.Name, final.Data)
		}
		c.Resp.Body.Close()
	}
	if n := sqlOne(t, s, "SELECT count(*) FROM messages WHERE user_id = '"+a.ID+"' AND status = 'in_progress'"); n != "0" {
		t.Errorf("%s replies still in progress after the burst", n)
	}

	// Replica A dies with a reply in progress: B's periodic recovery (every
	// second) marks it incomplete, keeping its stored text.
	orphan := unique("Orphan scenario:slow")
	defer close(p.Gate(orphan))
	c4 := s.OpenChat(t, a.Access, conv1, orphan, true)
	defer c4.Resp.Body.Close()
	openOK(t, c4, true)
	c4.Expect(t, "message")
	r4 := Str(c4.Expect(t, "reply"), "id")
	waitForMessage(t, b, a, conv1, r4, 3*time.Second, "the orphan's first piece is stored",
		func(m map[string]any) bool { return Str(m, "content") == "First" })
	if err := s.Signal("message", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.Wait("message")
	got := waitForMessage(t, b, a, conv1, r4, 6*time.Second, "replica B marks the dead replica's reply incomplete",
		func(m map[string]any) bool { return Str(m, "status") != "in_progress" })
	if Str(got, "status") != "incomplete" || Str(got, "content") != "First" {
		t.Errorf("the dead replica's reply is %v, want incomplete \"First\"", got)
	}
	if alive, why := replicaB.Alive("message"); !alive {
		t.Errorf("replica B died (%s): %s", why, tail(replicaB.Logs("message"), 1500))
	}
}

// (h) A malformed offset is 400 naming after or Last-Event-ID, before any
// event.
func TestDurableMalformedResumeOffsetIs400(t *testing.T) {
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	convID := newConversation(t, s, a)
	_, reply := chatTurn(t, s, a, convID, map[string]any{"content": unique("Offsets scenario:ok")}, true)
	id := Str(reply, "id")
	cases := []struct {
		query   string
		headers []string
		field   string
	}{
		{"after=-1", nil, "after"},
		{"after=abc", nil, "after"},
		{"after=", nil, "after"},
		{"after=1.5", nil, "after"},
		{"after=2147483648", nil, "after"},
		{"after=99999999999999999999", nil, "after"},
		{"after=1&after=2", nil, "after"},
		{"", []string{"Last-Event-ID", "-1"}, "Last-Event-ID"},
		{"", []string{"Last-Event-ID", "5x"}, "Last-Event-ID"},
		{"", []string{"Last-Event-ID", "2147483648"}, "Last-Event-ID"},
		{"", []string{"Last-Event-ID", "0x10"}, "Last-Event-ID"},
		{"", []string{"Last-Event-ID", "1", "Last-Event-ID", "2"}, "Last-Event-ID"},
		// Both are checked: a bad after beside a good header.
		{"after=abc", []string{"Last-Event-ID", "3"}, "after"},
	}
	for _, tc := range cases {
		for _, sse := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s %q sse %v", tc.query, tc.headers, sse), func(t *testing.T) {
				c := s.OpenReplyStream(t, a.Access, resumePath(convID, id, tc.query), sse, tc.headers...)
				body, _ := io.ReadAll(c.Resp.Body)
				c.Resp.Body.Close()
				r := Response{Status: c.Resp.StatusCode, Header: c.Resp.Header, Body: body}
				if strings.HasPrefix(c.Resp.Header.Get("Content-Type"), "application/json") {
					json.Unmarshal(body, &r.JSON)
				}
				expectInvalid(t, r, tc.field)
			})
		}
	}
	// The largest offset is valid: past the end there is nothing to send.
	c := s.OpenReplyStream(t, a.Access, resumePath(convID, id, "after=2147483647"), true)
	openOK(t, c, true)
	if final := c.ReadToEnd(t); final.Name != "done" {
		t.Errorf("after=2147483647 ends with %s %v, want done", final.Name, final.Data)
	}
	if text, _, _, n := c.Deltas(); n != 0 {
		t.Errorf("after=2147483647 sent %q", text)
	}
	c.Resp.Body.Close()
}

// The operator's shutdown (SIGTERM) stops the replies in progress: they are
// stored incomplete with their text, whether or not their client is still
// there, the provider requests are closed, and the process exits.
func TestDurableSigtermStoresTheRepliesInProgressIncomplete(t *testing.T) {
	s, p := durableStack(t, "MAX_STREAMS_PER_USER=4")
	a := s.NewAccount(t)
	convs := []string{newConversation(t, s, a), newConversation(t, s, a)}
	var ids, markers []string
	var streams []*ChatStream
	for i, conv := range convs {
		marker := unique(fmt.Sprintf("Shutdown %d scenario:drip chunks:400 every:50ms", i))
		c := s.OpenChat(t, a.Access, conv, marker, true)
		defer c.Resp.Body.Close()
		openOK(t, c, true)
		c.Expect(t, "message")
		ids = append(ids, Str(c.Expect(t, "reply"), "id"))
		c.Expect(t, "delta")
		markers = append(markers, marker)
		streams = append(streams, c)
	}
	streams[1].Resp.Body.Close() // the second reply's client is gone
	for i, id := range ids {
		waitForMessage(t, s, a, convs[i], id, 3*time.Second, "some text stored",
			func(m map[string]any) bool { return Str(m, "content") != "" })
	}

	sent := time.Now()
	if err := s.Signal("message", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.Wait("message") }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("chat-message exited with %v after SIGTERM", err)
		}
		t.Logf("chat-message exited %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		s.Signal("message", syscall.SIGKILL)
		<-exited
		t.Fatalf("chat-message did not exit within 20 s of SIGTERM with replies in progress; its log:\n%s", tail(s.Logs("message"), 1500))
	}
	for _, m := range markers {
		expectProviderHangUp(t, p, m, time.Second, "after SIGTERM")
	}
	final := streams[0].ReadToEnd(t)
	streamed, _, _, _ := streams[0].Deltas()
	for i, id := range ids {
		row := sqlOne(t, s, "SELECT status || '|' || content FROM messages WHERE id = '"+id+"'")
		status, text, _ := strings.Cut(row, "|")
		if status != "incomplete" || text == "" || !isPrefix(text, dripText(400)) {
			t.Errorf("reply %d after SIGTERM: %s %q, want incomplete with its text so far", i, status, text)
		}
		if i == 0 && final.Name == "done" && text != streamed {
			t.Errorf("the connected client read %q, the stored reply is %q", streamed, text)
		}
	}
}

// A replica whose database session is cut (a database restart, a network
// blip) is not gone (SPEC "Durable replies": only :cancel, a provider error,
// a timeout or the operator's shutdown stops a reply; replies of a process
// that is gone become incomplete): its replies go on, and another replica's
// recovery must not end them. Replica A takes its lock again only at its
// next REPLY_RECOVERY_INTERVAL (1h here), replica B recovers every second:
// the same race happens with equal intervals, whichever replica's timer
// fires first after the database comes back.
func TestDurableReplyOutlivesItsReplicaLosingTheDatabaseSession(t *testing.T) {
	s, p := durableStack(t, "MAX_STREAMS_PER_USER=4", "REPLY_RECOVERY_INTERVAL=1h")
	replicaB, b := startMessageReplica(t, s, "REPLY_RECOVERY_INTERVAL=1s")
	a := s.NewAccount(t)
	convID := newConversation(t, s, a)
	marker := unique("Keep going scenario:slow")
	gate := p.Gate(marker)
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	c := s.OpenChat(t, a.Access, convID, marker, true)
	defer c.Resp.Body.Close()
	openOK(t, c, true)
	c.Expect(t, "message")
	id := Str(c.Expect(t, "reply"), "id")
	c.Expect(t, "delta")
	waitForMessage(t, s, a, convID, id, 3*time.Second, "the first piece is stored",
		func(m map[string]any) bool { return Str(m, "content") == "First" })

	// What a database restart does to every service: its sessions end.
	if out, err := Psql(s.AdminURL, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "+
		"WHERE datname = current_database() AND pid <> pg_backend_pid()"); err != nil {
		t.Fatalf("terminate: %v %s", err, out)
	}
	cut := time.Now()
	// Three of B's recovery runs: the reply, still generated by A, stays
	// in progress.
	for time.Since(cut) < 3500*time.Millisecond {
		r, err := b.Quick("GET", messagePath(convID, id), nil, Bearer(a.Access)...)
		if err == nil && r.Status == http.StatusOK && Str(r.JSON, "status") != "in_progress" {
			t.Fatalf("%v after A's database sessions were cut (A alive, generating the reply), the reply is %s %q, "+
				"want in_progress until A finishes it; replica B's log: %q", time.Since(cut).Round(time.Millisecond),
				Str(r.JSON, "status"), Str(r.JSON, "content"), replicaB.logs["message"].Lines("gone replicas"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(gate)
	final := c.ReadToEnd(t)
	stored := waitForMessage(t, s, a, convID, id, 10*time.Second, "the reply ends",
		func(m map[string]any) bool { return Str(m, "status") != "in_progress" })
	if Str(stored, "status") != "complete" || Str(stored, "content") != "First and last" || final.Name != "done" {
		t.Errorf("the reply ends %s %q (stream: %s %v), want complete \"First and last\"",
			Str(stored, "status"), Str(stored, "content"), final.Name, final.Data)
	}
}

// Deleting a reply in progress (the message, or its conversation) stops
// its generation: the provider request ends, nothing comes back to life,
// and the user's slot is free.
func TestDurableDeletingAReplyInProgressStopsIt(t *testing.T) {
	s, p := ChatStack(t) // one reply in progress per user
	for _, what := range []string{"the message", "the conversation"} {
		t.Run(what, func(t *testing.T) {
			a := s.NewAccount(t)
			convID := newConversation(t, s, a)
			marker := unique("Delete me scenario:drip chunks:400 every:50ms")
			c := s.OpenChat(t, a.Access, convID, marker, true)
			defer c.Resp.Body.Close()
			openOK(t, c, true)
			c.Expect(t, "message")
			id := Str(c.Expect(t, "reply"), "id")
			c.Expect(t, "delta")
			path := "/v1/conversations/" + convID
			if what == "the message" {
				path = messagePath(convID, id)
			}
			expectNoContent(t, s.Do(t, "DELETE", path, nil, Bearer(a.Access)...), "delete "+what)
			expectProviderHangUp(t, p, marker, 2*time.Second, "after deleting "+what+" of a reply in progress")
			c.ReadToEnd(t)
			if n := sqlOne(t, s, "SELECT count(*) FROM messages WHERE id = '"+id+"'"); n != "0" {
				t.Errorf("the deleted reply is back (%s rows)", n)
			}
			ExpectError(t, s.Do(t, "GET", messagePath(convID, id), nil, Bearer(a.Access)...), http.StatusNotFound, "NOT_FOUND")
			chatTurn(t, s, a, newConversation(t, s, a), map[string]any{"content": unique("Next scenario:ok")}, true)
		})
	}
}

// Forking at a reply in progress copies it incomplete (docs/api.md
// "Conversation trees"): the copy is never generated, so it must not stay
// in progress or hold a slot; the original goes on to its end.
func TestDurableForkOfAReplyInProgressCopiesItIncomplete(t *testing.T) {
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	convID := newConversation(t, s, a)
	marker := unique("Fork mid-reply scenario:drip chunks:40 every:50ms")
	c := s.OpenChat(t, a.Access, convID, marker, false)
	defer c.Resp.Body.Close()
	openOK(t, c, false)
	c.Expect(t, "message")
	id := Str(c.Expect(t, "reply"), "id")
	waitForMessage(t, s, a, convID, id, 3*time.Second, "some text stored",
		func(m map[string]any) bool { return Str(m, "content") != "" })
	r := s.Do(t, "POST", messagePath(convID, id)+":fork", map[string]any{}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusCreated, "fork at a reply in progress")
	forkID := Str(r.JSON, "id")
	copies := allMessages(t, s, a, forkID, nil)
	if len(copies) != 2 {
		t.Fatalf("the fork holds %d messages, want 2", len(copies))
	}
	copied := copies[1]
	if Str(copied, "status") != "incomplete" || Str(copied, "content") == "" || !isPrefix(Str(copied, "content"), dripText(40)) {
		t.Errorf("the copy of the reply in progress is %s %q, want incomplete with the stored text", Str(copied, "status"), Str(copied, "content"))
	}
	if final := c.ReadToEnd(t); final.Name != "done" || Str(final.Data, "message", "content") != dripText(40) {
		t.Errorf("the original reply ended with %s %v", final.Name, final.Data)
	}
	if got := getOK(t, s, a, messagePath(forkID, Str(copied, "id"))); !sameJSON(got, copied) {
		t.Errorf("the copy changed after the original ended: %v, was %v", got, copied)
	}
	// Nothing in progress is left to hold the user's only slot.
	chatTurn(t, s, a, forkID, map[string]any{"content": unique("In the fork scenario:ok")}, true)
}
