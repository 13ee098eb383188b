package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

var (
	chatOnce     sync.Once
	chatStack    *Stack
	chatProvider *FakeProvider
	chatErr      error
)

// ChatStack is a stack whose message service asks the fake provider, with a
// small context budget, a system prompt, a 1 s idle timeout, one reply in
// progress per user and two allowed models besides the default; its
// conversation and message services also accept tokens of an external
// (Supabase-like) issuer.
func ChatStack(t *testing.T) (*Stack, *FakeProvider) {
	t.Helper()
	chatOnce.Do(func() {
		chatProvider = NewFakeProvider()
		external := []string{"EXTERNAL_JWT_ISSUER=" + externalIssuer,
			"EXTERNAL_JWT_SECRET=" + externalSecret}
		chatStack, chatErr = StartStack(map[string][]string{
			"conversation": external,
			"message": append([]string{
				"PROVIDER=openai", "PROVIDER_BASE_URL=" + chatProvider.URL + "/v1",
				"PROVIDER_API_KEY=" + providerKey, "PROVIDER_MODEL=fake-model-1",
				"PROVIDER_MODELS=fake-model-2,fake-model-3",
				"PROVIDER_IDLE_TIMEOUT=1s", "SYSTEM_PROMPT=You are a test assistant.",
				"CONTEXT_BUDGET_CHARS=400", "MAX_STREAMS_PER_USER=1",
			}, external...),
		})
	})
	if chatErr != nil {
		t.Fatalf("starting the chat stack: %v", chatErr)
	}
	return chatStack, chatProvider
}

// streamClient bounds a whole stream at 60 s, so that a stream that never
// ends fails its test instead of hanging the suite.
var streamClient = &http.Client{Timeout: 60 * time.Second}

// ChatStream reads the events of one reply, over SSE or NDJSON.
type ChatStream struct {
	Resp   *http.Response
	reader *bufio.Reader
	sse    bool
	// What the deltas read so far said (check).
	deltas     int
	first, end int64
	text       strings.Builder
}

type Event struct {
	Name string
	Data map[string]any
	// ID is the SSE "id:" line of the event ("" when it has none, and
	// always over NDJSON).
	ID string
}

func (s *Stack) OpenChat(t *testing.T, token, conversationID, content string, sse bool) *ChatStream {
	t.Helper()
	return s.OpenStream(t, token, "/v1/conversations/"+conversationID+"/chat",
		map[string]string{"content": content}, sse)
}

// OpenStream POSTs body as JSON to a streaming route (Chat, :regenerate)
// and reads its answer as events.
func (s *Stack) OpenStream(t *testing.T, token, path string, body any, sse bool) *ChatStream {
	t.Helper()
	encoded, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.openEvents("POST", path, string(encoded), sse, Bearer(token)...)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return c
}

// OpenReplyStream GETs a reply's stream (StreamReply) with extra headers
// (Last-Event-ID), the query being part of path.
func (s *Stack) OpenReplyStream(t *testing.T, token, path string, sse bool, headers ...string) *ChatStream {
	t.Helper()
	c, err := s.openEvents("GET", path, "", sse, append(Bearer(token), headers...)...)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return c
}

// openEvents sends a request to a streaming route; headers are name, value
// pairs, added (a name given twice is sent twice).
func (s *Stack) openEvents(method, path, body string, sse bool, headers ...string) (*ChatStream, error) {
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.BaseURL+path, reader)
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if sse {
		req.Header.Set("Accept", "text/event-stream")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := streamClient.Do(req)
	if err != nil {
		return nil, err
	}
	return &ChatStream{Resp: resp, reader: bufio.NewReader(resp.Body), sse: sse}, nil
}

// Next returns the next event, or io.EOF at the end of the stream.
func (c *ChatStream) Next() (Event, error) {
	if !c.sse {
		line, err := c.reader.ReadString('\n')
		if err != nil {
			return Event{}, err
		}
		var wrapper map[string]map[string]any
		if err := json.Unmarshal([]byte(line), &wrapper); err != nil || len(wrapper) != 1 {
			return Event{}, fmt.Errorf("bad NDJSON line %q", line)
		}
		for name, data := range wrapper {
			if name == "error" {
				data = map[string]any{"error": data}
			}
			return Event{Name: name, Data: data}, nil
		}
	}
	var ev Event
	for {
		line, err := c.reader.ReadString('\n')
		if err != nil {
			return Event{}, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "" && ev.Name != "":
			return ev, nil
		case strings.HasPrefix(line, "event:"):
			ev.Name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "id:"):
			ev.ID = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "data:"):
			if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(line, "data:"))), &ev.Data); err != nil {
				return Event{}, fmt.Errorf("bad data line %q", line)
			}
		}
	}
}

// ExpectEvent is Expect returning the whole event (its SSE id too).
func (c *ChatStream) ExpectEvent(t *testing.T, name string) Event {
	t.Helper()
	ev, err := c.Next()
	if err != nil {
		t.Fatalf("waiting for %s: %v", name, err)
	}
	if ev.Name != name {
		t.Fatalf("event %s %v, want %s", ev.Name, ev.Data, name)
	}
	if problem := c.check(ev); problem != "" {
		t.Error(problem)
	}
	return ev
}

// Expect reads the next event, which must be name, and returns its data.
// Deltas are checked as they come (check).
func (c *ChatStream) Expect(t *testing.T, name string) map[string]any {
	t.Helper()
	return c.ExpectEvent(t, name).Data
}

// check says what is wrong with an event of the stream: a delta's offset
// must be a JSON number equal to the characters (code points) of the
// deltas before it, after the first delta's offset; over SSE a delta, and
// no other event, has the id offset + characters of its text.
func (c *ChatStream) check(ev Event) string {
	if ev.Name != "delta" {
		if ev.ID != "" {
			return fmt.Sprintf("%s event with an SSE id %q", ev.Name, ev.ID)
		}
		return ""
	}
	raw, ok := ev.Data["offset"].(float64)
	if !ok {
		return fmt.Sprintf("delta offset %#v is not a JSON number: %v", ev.Data["offset"], ev.Data)
	}
	offset := int64(raw)
	text := Str(ev.Data, "text")
	var problem string
	if c.deltas > 0 && offset != c.end {
		problem = fmt.Sprintf("delta offset %d, want %d (the characters of the deltas before it, after %d)", offset, c.end, c.first)
	}
	if c.deltas == 0 {
		c.first = offset
	}
	c.deltas++
	c.end = offset + int64(utf8.RuneCountInString(text))
	c.text.WriteString(text)
	if c.sse && ev.ID != strconv.FormatInt(c.end, 10) && problem == "" {
		problem = fmt.Sprintf("delta {offset %d, %d characters} has SSE id %q, want %d", offset, utf8.RuneCountInString(text), ev.ID, c.end)
	}
	return problem
}

// Deltas is what the stream's deltas said so far: their text joined, the
// offset of the first and the offset after the last (the SSE id of the
// last), and how many there were.
func (c *ChatStream) Deltas() (text string, first, end int64, count int) {
	return c.text.String(), c.first, c.end, c.deltas
}

// ReadToEnd reads deltas until the last event (done or error) and checks
// that the stream ends after it.
func (c *ChatStream) ReadToEnd(t *testing.T) Event {
	t.Helper()
	for {
		ev, err := c.Next()
		if err != nil {
			t.Fatalf("reading the stream to its end: %v (after %d deltas)", err, c.deltas)
		}
		if problem := c.check(ev); problem != "" {
			t.Error(problem)
		}
		switch ev.Name {
		case "delta":
			continue
		case "done", "error":
			if more, err := c.Next(); err != io.EOF {
				t.Errorf("the stream goes on after %s: %v %v", ev.Name, more, err)
			}
			return ev
		default:
			t.Fatalf("event %s %v in the middle of the deltas", ev.Name, ev.Data)
		}
	}
}

func unique(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + " " + hex.EncodeToString(b)
}

func newConversation(t *testing.T, s *Stack, a Account) string {
	t.Helper()
	r := s.Do(t, "POST", "/v1/conversations", map[string]any{}, Bearer(a.Access)...)
	if r.Status != http.StatusCreated {
		t.Fatalf("create conversation: %d %s", r.Status, r.Body)
	}
	return Str(r.JSON, "id")
}

// storedMessages lists a conversation's messages, oldest first.
func storedMessages(t *testing.T, s *Stack, a Account, id string) []any {
	t.Helper()
	r := s.Do(t, "GET", "/v1/conversations/"+id+"/messages?page_size=200", nil, Bearer(a.Access)...)
	if r.Status != http.StatusOK {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	messages, _ := Get(r.JSON, "messages").([]any)
	return messages
}

// waitForAssistant polls until the conversation holds an assistant message.
func waitForAssistant(t *testing.T, s *Stack, a Account, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range storedMessages(t, s, a, id) {
			if Str(m, "role") == "assistant" {
				return m.(map[string]any)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no assistant message was stored")
	return nil
}

// expectStarted checks a `reply` event: the assistant message as stored
// when the reply starts (in progress, no text yet) under parentID, and
// returns it.
func expectStarted(t *testing.T, c *ChatStream, convID, parentID, model string) map[string]any {
	t.Helper()
	reply := c.Expect(t, "reply")
	if Str(reply, "role") != "assistant" || Str(reply, "status") != "in_progress" || Str(reply, "content") != "" ||
		Str(reply, "conversation_id") != convID || Str(reply, "parent_id") != parentID || Str(reply, "model") != model ||
		!uuidV7Pattern.MatchString(Str(reply, "id")) {
		t.Errorf("reply event %v, want the assistant message in progress under %s with model %s", reply, parentID, model)
	}
	return reply
}

// waitForMessage polls GET message until ok(message) holds, for at most
// limit, and returns the last message read (failing the test if ok never
// held, with what it was last).
func waitForMessage(t *testing.T, s *Stack, a Account, convID, id string, limit time.Duration,
	what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r := s.Do(t, "GET", messagePath(convID, id), nil, Bearer(a.Access)...)
		mustStatus(t, r, http.StatusOK, "GET message "+id)
		if ok(r.JSON) {
			return r.JSON
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; the message is %.600s", what, limit, r.Body)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func hasStatus(status string) func(map[string]any) bool {
	return func(m map[string]any) bool { return Str(m, "status") == status }
}

func TestChatStreamsOverSSEAndStoresBothMessages(t *testing.T) {
	s, p := ChatStack(t)
	a := s.NewAccount(t)
	id := newConversation(t, s, a)
	content := unique("Tell me a story scenario:ok")
	c := s.OpenChat(t, a.Access, id, content, true)
	defer c.Resp.Body.Close()
	if c.Resp.StatusCode != http.StatusOK || !strings.HasPrefix(c.Resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", c.Resp.StatusCode, c.Resp.Header.Get("Content-Type"))
	}
	user := c.Expect(t, "message")
	if Str(user, "role") != "user" || Str(user, "content") != content || Str(user, "status") != "complete" {
		t.Errorf("user message %v", user)
	}
	// The assistant message, stored in progress, comes at once, so a
	// client knows its id.
	started := expectStarted(t, c, id, Str(user, "id"), "fake-model-1")
	if stored := getOK(t, s, a, messagePath(id, Str(started, "id"))); Str(stored, "role") != "assistant" {
		t.Errorf("the reply of the reply event is not stored: %v", stored)
	}
	var text string
	for i, want := range []struct {
		text   string
		offset float64
		id     string
	}{{"Hello", 0, "5"}, {", ", 5, "7"}, {"world", 7, "12"}} {
		ev := c.ExpectEvent(t, "delta")
		if Str(ev.Data, "text") != want.text || ev.Data["offset"] != want.offset || ev.ID != want.id {
			t.Errorf("delta %d: %v id %q, want {%q %v} id %s", i, ev.Data, ev.ID, want.text, want.offset, want.id)
		}
		text += want.text
	}
	done := c.Expect(t, "done")
	reply := Get(done, "message")
	if Str(reply, "role") != "assistant" || Str(reply, "content") != text || Str(reply, "id") != Str(started, "id") ||
		Str(reply, "status") != "complete" || Str(reply, "model") != "fake-model-1" {
		t.Errorf("reply %v, want the one of the reply event (%s), complete", reply, Str(started, "id"))
	}
	if Get(done, "usage", "total_tokens") != float64(14) {
		t.Errorf("usage %v", Get(done, "usage"))
	}
	if _, err := c.Next(); err != io.EOF {
		t.Errorf("stream goes on after done: %v", err)
	}

	stored := storedMessages(t, s, a, id)
	if len(stored) != 2 || Str(stored[0], "id") != Str(user, "id") || Str(stored[1], "id") != Str(reply, "id") ||
		Str(stored[1], "content") != "Hello, world" {
		t.Errorf("stored %v", stored)
	}
	conv := s.Do(t, "GET", "/v1/conversations/"+id, nil, Bearer(a.Access)...)
	if Str(conv.JSON, "title") != content || Get(conv.JSON, "message_count") != float64(2) {
		t.Errorf("conversation after the first reply: %s", conv.Body)
	}

	// What the provider got: the key, the model, the system prompt first,
	// the user's message last.
	req := p.Request(content)
	if req == nil {
		t.Fatal("the provider saw no request")
	}
	if req.Authorization != "Bearer "+providerKey || req.Model != "fake-model-1" {
		t.Errorf("provider request: auth %q model %q", req.Authorization, req.Model)
	}
	if len(req.Messages) != 2 || req.Messages[0].Role != "system" ||
		req.Messages[0].Content != "You are a test assistant." || req.Messages[1].Content != content {
		t.Errorf("context %+v", req.Messages)
	}
}

func TestChatStreamsNDJSONWithoutEventStreamAccept(t *testing.T) {
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	id := newConversation(t, s, a)
	c := s.OpenChat(t, a.Access, id, unique("Plain please scenario:ok"), false)
	defer c.Resp.Body.Close()
	if ct := c.Resp.Header.Get("Content-Type"); !strings.Contains(ct, "ndjson") {
		t.Errorf("content type %q", ct)
	}
	user := c.Expect(t, "message")
	expectStarted(t, c, id, Str(user, "id"), "fake-model-1")
	// NDJSON has no ids: the offsets are in the deltas (checked by Expect).
	for i := 0; i < 3; i++ {
		c.Expect(t, "delta")
	}
	if text, first, end, _ := c.Deltas(); text != "Hello, world" || first != 0 || end != 12 {
		t.Errorf("deltas %q from %d to %d, want \"Hello, world\" from 0 to 12", text, first, end)
	}
	if Str(c.Expect(t, "done"), "message", "content") != "Hello, world" {
		t.Error("done without the reply")
	}
}

func TestChatFirstDeltaReachesTheClientBeforeTheProviderFinishes(t *testing.T) {
	s, p := ChatStack(t)
	a := s.NewAccount(t)
	id := newConversation(t, s, a)
	content := unique("Slowly scenario:slow")
	gate := p.Gate(content)
	c := s.OpenChat(t, a.Access, id, content, true)
	defer c.Resp.Body.Close()
	c.Expect(t, "message")
	c.Expect(t, "reply")
	// The provider is still waiting on the gate: this delta was not buffered.
	if got := Str(c.Expect(t, "delta"), "text"); got != "First" {
		t.Fatalf("first delta %q", got)
	}
	close(gate)
	if got := Str(c.Expect(t, "delta"), "text"); got != " and last" {
		t.Fatalf("second delta %q", got)
	}
	if Str(c.Expect(t, "done"), "message", "content") != "First and last" {
		t.Error("wrong reply")
	}
}

func TestChatMalformedChunkEndsWithAnErrorAndAFailedMessage(t *testing.T) {
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	id := newConversation(t, s, a)
	content := unique("Break scenario:malformed")
	c := s.OpenChat(t, a.Access, id, content, true)
	defer c.Resp.Body.Close()
	c.Expect(t, "message")
	c.Expect(t, "reply")
	c.Expect(t, "delta")
	e := c.Expect(t, "error")
	if Str(e, "error", "code") != "UNAVAILABLE" || Str(e, "error", "request_id") != c.Resp.Header.Get("X-Request-Id") {
		t.Errorf("error event %v", e)
	}
	stored := storedMessages(t, s, a, id)
	if len(stored) != 2 || Str(stored[0], "content") != content ||
		Str(stored[1], "status") != "failed" || Str(stored[1], "content") != "Partial" {
		t.Errorf("stored %v", stored)
	}
}

func TestChatProviderErrorKeepsTheUserMessageAndNeverLeaksTheKey(t *testing.T) {
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	id := newConversation(t, s, a)
	content := unique("Fail scenario:http-error")
	c := s.OpenChat(t, a.Access, id, content, false)
	raw, _ := io.ReadAll(c.Resp.Body)
	c.Resp.Body.Close()
	if !strings.Contains(string(raw), `"UNAVAILABLE"`) {
		t.Errorf("stream %s", raw)
	}
	stored := storedMessages(t, s, a, id)
	if len(stored) != 2 || Str(stored[0], "role") != "user" || Str(stored[1], "status") != "failed" {
		t.Errorf("stored %v", stored)
	}
	for name := range s.procs {
		if strings.Contains(s.Logs(name), providerKey) {
			t.Errorf("the provider key is in the %s log", name)
		}
	}
	if strings.Contains(string(raw), providerKey) {
		t.Error("the provider key is in the answer")
	}
}

func TestChatStalledProviderTimesOut(t *testing.T) {
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	id := newConversation(t, s, a)
	c := s.OpenChat(t, a.Access, id, unique("Wait scenario:stall"), true)
	defer c.Resp.Body.Close()
	c.Expect(t, "message")
	c.Expect(t, "reply")
	c.Expect(t, "delta")
	if e := c.Expect(t, "error"); Str(e, "error", "code") != "DEADLINE_EXCEEDED" {
		t.Errorf("error event %v", e)
	}
	reply := waitForAssistant(t, s, a, id)
	if Str(reply, "status") != "failed" || Str(reply, "content") != "Before the stall" {
		t.Errorf("stored reply %v", reply)
	}
}

// Replies are durable (docs/api.md "Durable replies"): a client that hangs
// up no longer cancels the provider request; the reply is generated to its
// end and stored complete.
func TestChatClientHangingUpLetsTheReplyFinish(t *testing.T) {
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	id := newConversation(t, s, a)
	content := unique("Go on scenario:drip chunks:16 every:40ms")
	c := s.OpenChat(t, a.Access, id, content, true)
	user := c.Expect(t, "message")
	reply := expectStarted(t, c, id, Str(user, "id"), "fake-model-1")
	c.Expect(t, "delta")
	c.Expect(t, "delta")
	c.Resp.Body.Close() // the browser tab closes
	stored := waitForMessage(t, s, a, id, Str(reply, "id"), 15*time.Second,
		"the reply completes after the client hung up", func(m map[string]any) bool { return Str(m, "status") != "in_progress" })
	if Str(stored, "status") != "complete" || Str(stored, "content") != dripText(16) {
		t.Errorf("stored reply %v, want complete with the whole text %q", stored, dripText(16))
	}
	if stored := storedMessages(t, s, a, id); len(stored) != 2 || Str(stored[0], "content") != content {
		t.Errorf("stored messages %v", stored)
	}
}

func TestChatContextKeepsTheNewestMessagesWithinTheBudget(t *testing.T) {
	s, p := ChatStack(t)
	a := s.NewAccount(t)
	id := newConversation(t, s, a)
	var earlier []string
	for i := 1; i <= 5; i++ {
		// 100 characters in 197 bytes: the budget counts characters.
		text := fmt.Sprintf("m%d %s", i, strings.Repeat("\u00e9", 97))
		earlier = append(earlier, text)
		r := s.Do(t, "POST", "/v1/conversations/"+id+"/messages",
			map[string]string{"role": "user", "content": text}, Bearer(a.Access)...)
		if r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
	}
	content := unique("Sum up scenario:ok")
	c := s.OpenChat(t, a.Access, id, content, true)
	io.ReadAll(c.Resp.Body)
	c.Resp.Body.Close()
	req := p.Request(content)
	var got []string
	for _, m := range req.Messages {
		got = append(got, m.Content)
	}
	// 400 characters: the new message (about 30) and the three newest
	// earlier ones (100 each) fit; m1 and m2 are dropped.
	want := []string{"You are a test assistant.", earlier[2], earlier[3], earlier[4], content}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("context\n got %q\nwant %q", got, want)
	}
}

func TestChatConcurrentStreamsPerUserAreCapped(t *testing.T) {
	s, p := ChatStack(t)
	a := s.NewAccount(t)
	id := newConversation(t, s, a)
	content := unique("Hold scenario:slow")
	gate := p.Gate(content)
	c := s.OpenChat(t, a.Access, id, content, true)
	defer c.Resp.Body.Close()
	c.Expect(t, "message")
	c.Expect(t, "reply")
	c.Expect(t, "delta")
	second := s.Do(t, "POST", "/v1/conversations/"+id+"/chat",
		map[string]string{"content": "another one"}, Bearer(a.Access)...)
	ExpectError(t, second, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED")
	if second.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	close(gate)
	c.Expect(t, "delta")
	c.Expect(t, "done")
}

func TestChatRejectsBadRequestsBeforeStreaming(t *testing.T) {
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	id := newConversation(t, s, a)
	ExpectError(t, s.Do(t, "POST", "/v1/conversations/"+id+"/chat", map[string]string{"content": ""}, Bearer(a.Access)...),
		http.StatusBadRequest, "INVALID_ARGUMENT")
	ExpectError(t, s.Do(t, "POST", "/v1/conversations/0190f3a0-0000-7000-8000-000000000000/chat",
		map[string]string{"content": "hi"}, Bearer(a.Access)...), http.StatusNotFound, "NOT_FOUND")
	ExpectError(t, s.Do(t, "POST", "/v1/conversations/"+id+"/chat", map[string]string{"content": "hi"}),
		http.StatusUnauthorized, "UNAUTHENTICATED")
	if n := len(storedMessages(t, s, a, id)); n != 0 {
		t.Errorf("%d messages stored by refused requests", n)
	}
}
