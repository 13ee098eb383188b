package e2e

// Conversation trees through the gateway (SPEC "Conversation trees"):
// versions made by an edit (a create under an earlier parent) or by
// :regenerate, switching the active branch, the context of a reply in a
// branched conversation, :fork, subtree deletes, paging the active branch
// while it grows, idempotent creates with a parent, malformed input, the
// fields of the answers, and concurrent changes to one tree.
// Isolation of the new routes and fields is in isolation_test.go.

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// underActiveLeaf, as the parent of a node, sends no parent_id at all: the
// message goes under the leaf of the active branch.
const underActiveLeaf = "<active leaf>"

// node is a message to create: under the message named parent, under the
// active leaf (underActiveLeaf), or as a new root (""). Its content is its
// name.
type node struct{ name, parent, role string }

// grow creates the nodes in order and returns the stored messages by name.
func grow(t *testing.T, s *Stack, a Account, convID string, nodes ...node) map[string]map[string]any {
	t.Helper()
	made := map[string]map[string]any{}
	for _, n := range nodes {
		if n.parent == underActiveLeaf {
			made[n.name] = createMessage(t, s, a, convID, n.role, n.name)
			continue
		}
		parent := ""
		if n.parent != "" {
			if made[n.parent] == nil {
				t.Fatalf("node %s: no node %s made before it", n.name, n.parent)
			}
			parent = Str(made[n.parent], "id")
		}
		made[n.name] = createUnder(t, s, a, convID, parent, n.role, n.name)
	}
	return made
}

// activate switches the active branch through message id and returns the
// conversation the PATCH answered.
func activate(t *testing.T, s *Stack, a Account, convID, id string) map[string]any {
	t.Helper()
	r := s.Do(t, "PATCH", "/v1/conversations/"+convID, map[string]any{"active_message_id": id}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusOK, "switch the active branch")
	return r.JSON
}

var allBranches = url.Values{"branch": {"all"}}

// contentsOf lists the contents of messages: the names grow gave them.
func contentsOf(list []map[string]any) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i] = Str(m, "content")
	}
	return out
}

// expectActive checks the active branch: the listing (root first, paged
// small so that the cursor is used) and the conversation's active_leaf_id.
func expectActive(t *testing.T, s *Stack, a Account, convID string, want ...string) {
	t.Helper()
	listed := allMessages(t, s, a, convID, url.Values{"page_size": {"2"}})
	if got := contentsOf(listed); !slices.Equal(got, want) {
		t.Errorf("active branch %q, want %q", got, want)
		return
	}
	desc := allMessages(t, s, a, convID, url.Values{"page_size": {"3"}, "order": {"desc"}})
	reversed := ids(desc)
	slices.Reverse(reversed)
	if !slices.Equal(reversed, ids(listed)) {
		t.Errorf("active branch newest first %q, want %q reversed", contentsOf(desc), want)
	}
	leaf := ""
	if len(listed) > 0 {
		leaf = Str(listed[len(listed)-1], "id")
	}
	if got := Str(conversation(t, s, a, convID), "active_leaf_id"); got != leaf {
		t.Errorf("active_leaf_id %q, want %q (%v)", got, leaf, want)
	}
}

// expectPlace checks a message's parent and its place among its siblings.
func expectPlace(t *testing.T, m map[string]any, parentID string, index, count int64) {
	t.Helper()
	if p, ok := m["parent_id"].(string); !ok || p != parentID {
		t.Errorf("%s: parent_id %#v, want %q", Str(m, "content"), m["parent_id"], parentID)
	}
	if i, n := asInt(m["sibling_index"]), asInt(m["sibling_count"]); i != index || n != count {
		t.Errorf("%s: sibling %d of %d, want %d of %d", Str(m, "content"), i, n, index, count)
	}
}

// expectReply reads the rest of a fake-provider "ok" reply (the reply
// event, the assistant message in progress under parentID; three deltas;
// done) to the end of the stream, which also means the stream's slot is
// free again, and returns the stored assistant message.
func expectReply(t *testing.T, c *ChatStream, convID, parentID string) map[string]any {
	t.Helper()
	defer c.Resp.Body.Close()
	started := expectStarted(t, c, convID, parentID, "fake-model-1")
	for _, want := range []string{"Hello", ", ", "world"} {
		if got := Str(c.Expect(t, "delta"), "text"); got != want {
			t.Fatalf("delta %q, want %q", got, want)
		}
	}
	done := c.Expect(t, "done")
	if ev, err := c.Next(); err != io.EOF {
		t.Fatalf("after done: %v %v, want the end of the stream", ev, err)
	}
	reply, _ := done["message"].(map[string]any)
	if Str(reply, "id") != Str(started, "id") {
		t.Errorf("done carries %s, the reply event %s", Str(reply, "id"), Str(started, "id"))
	}
	if Str(reply, "role") != "assistant" || Str(reply, "content") != "Hello, world" ||
		Str(reply, "status") != "complete" || Str(reply, "model") != "fake-model-1" {
		t.Fatalf("done %v", done)
	}
	return reply
}

// openOK checks that a stream started: 200 in the framing asked for.
func openOK(t *testing.T, c *ChatStream, sse bool) {
	t.Helper()
	want := "application/x-ndjson"
	if sse {
		want = "text/event-stream"
	}
	if c.Resp.StatusCode != http.StatusOK || !strings.HasPrefix(c.Resp.Header.Get("Content-Type"), want) {
		body, _ := io.ReadAll(c.Resp.Body)
		c.Resp.Body.Close()
		t.Fatalf("status %d, content type %q, want 200 %s; body %s", c.Resp.StatusCode,
			c.Resp.Header.Get("Content-Type"), want, body)
	}
}

// chatTurn sends body to Chat and returns the stored user message and reply.
func chatTurn(t *testing.T, s *Stack, a Account, convID string, body map[string]any, sse bool) (user, reply map[string]any) {
	t.Helper()
	c := s.OpenStream(t, a.Access, "/v1/conversations/"+convID+"/chat", body, sse)
	openOK(t, c, sse)
	user = c.Expect(t, "message")
	return user, expectReply(t, c, convID, Str(user, "id"))
}

// regenerate streams a new version of reply id; its stream has no
// `message` event, so the first event must be the reply, a sibling of id.
func regenerate(t *testing.T, s *Stack, a Account, convID, id string, sse bool) map[string]any {
	t.Helper()
	parent := Str(getOK(t, s, a, messagePath(convID, id)), "parent_id")
	c := s.OpenStream(t, a.Access, messagePath(convID, id)+":regenerate", map[string]any{}, sse)
	openOK(t, c, sse)
	return expectReply(t, c, convID, parent)
}

// providerContext lists what the provider got, "role: content" each.
func providerContext(req *providerRequest) []string {
	var out []string
	for _, m := range req.Messages {
		out = append(out, m.Role+": "+m.Content)
	}
	return out
}

// treeState is everything a client can read of a conversation's tree.
func treeState(t *testing.T, s *Stack, a Account, convID string) string {
	t.Helper()
	state := map[string]any{
		"conversation": conversation(t, s, a, convID),
		"active":       allMessages(t, s, a, convID, nil),
		"all":          allMessages(t, s, a, convID, allBranches),
	}
	return string(mustJSON(state))
}

func TestTreeEditingMakesASiblingVersionAndTheActiveBranchFollowsIt(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "versions"), "id")
	m := grow(t, s, a, convID,
		node{"q1", underActiveLeaf, "user"}, node{"r1", underActiveLeaf, "assistant"},
		node{"q2", underActiveLeaf, "user"}, node{"r2", underActiveLeaf, "assistant"})
	id := func(name string) string { return Str(m[name], "id") }

	// A linear history: each message under the one before, the first a root.
	expectPlace(t, m["q1"], "", 0, 1)
	expectPlace(t, m["r1"], id("q1"), 0, 1)
	expectPlace(t, m["q2"], id("r1"), 0, 1)
	expectPlace(t, m["r2"], id("q2"), 0, 1)
	expectActive(t, s, a, convID, "q1", "r1", "q2", "r2")

	// A new version of message 2, under message 1.
	r1b := createUnder(t, s, a, convID, id("q1"), "assistant", "r1 v2")
	if Str(r1b, "role") != "assistant" || Str(r1b, "content") != "r1 v2" || !uuidV7Pattern.MatchString(Str(r1b, "id")) {
		t.Errorf("created %v", r1b)
	}
	expectPlace(t, r1b, id("q1"), 1, 2)
	expectPlace(t, getOK(t, s, a, messagePath(convID, Str(r1b, "id"))), id("q1"), 1, 2)
	expectPlace(t, getOK(t, s, a, messagePath(convID, id("r1"))), id("q1"), 0, 2)
	expectPlace(t, getOK(t, s, a, messagePath(convID, id("q2"))), id("r1"), 0, 1)
	if timeField(t, r1b, "created_at").Before(timeField(t, m["r2"], "created_at")) {
		t.Errorf("the version's created_at %s precedes the newest message's %s", Str(r1b, "created_at"), Str(m["r2"], "created_at"))
	}

	// The active branch is the new version's path; the old version's
	// descendants are not on it.
	expectActive(t, s, a, convID, "q1", "r1 v2")
	listed := allMessages(t, s, a, convID, nil)
	expectPlace(t, listed[0], "", 0, 1)
	expectPlace(t, listed[1], id("q1"), 1, 2)
	// Every branch, in creation order, both ways and page by page.
	all := contentsOf(allMessages(t, s, a, convID, url.Values{"branch": {"all"}, "page_size": {"2"}}))
	if want := []string{"q1", "r1", "q2", "r2", "r1 v2"}; !slices.Equal(all, want) {
		t.Errorf("branch=all %q, want %q", all, want)
	}
	desc := contentsOf(allMessages(t, s, a, convID, url.Values{"branch": {"all"}, "order": {"desc"}, "page_size": {"3"}}))
	if want := []string{"r1 v2", "r2", "q2", "r1", "q1"}; !slices.Equal(desc, want) {
		t.Errorf("branch=all order=desc %q, want %q", desc, want)
	}
	// message_count counts every branch; last_message_at is the newest.
	c := expectCounts(t, s, a, convID, 5, r1b)
	if Str(c, "active_leaf_id") != Str(r1b, "id") {
		t.Errorf("active_leaf_id %q, want the new version %q", Str(c, "active_leaf_id"), Str(r1b, "id"))
	}

	// A create without parent_id goes under the new active leaf.
	q2b := createMessage(t, s, a, convID, "user", "q2 on v2")
	expectPlace(t, q2b, Str(r1b, "id"), 0, 1)
	expectActive(t, s, a, convID, "q1", "r1 v2", "q2 on v2")
	// A third version: every version sees the new count.
	r1c := createUnder(t, s, a, convID, id("q1"), "assistant", "r1 v3")
	expectPlace(t, r1c, id("q1"), 2, 3)
	for i, version := range []map[string]any{m["r1"], r1b} {
		expectPlace(t, getOK(t, s, a, messagePath(convID, Str(version, "id"))), id("q1"), int64(i), 3)
	}
	expectActive(t, s, a, convID, "q1", "r1 v3")
	expectCounts(t, s, a, convID, 7, r1c)
}

func TestTreeSwitchingBranchesFollowsTheNewestLeafAndRefusesForeignIds(t *testing.T) {
	s := SharedStack(t)
	a, b := s.NewAccount(t), s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "switching"), "id")
	m := grow(t, s, a, convID,
		node{"m1", "", "user"}, node{"m2", "m1", "assistant"}, node{"m3", "m2", "user"}, node{"m4", "m3", "assistant"},
		node{"m3b", "m2", "user"}, node{"m4b", "m3b", "assistant"},
		node{"m2b", "m1", "assistant"}, node{"m3c", "m2b", "user"},
		node{"r2", "", "user"}, node{"r2a", "r2", "assistant"})
	id := func(name string) string { return Str(m[name], "id") }
	expectActive(t, s, a, convID, "r2", "r2a")
	expectPlace(t, m["r2"], "", 1, 2)

	steps := []struct {
		to   string
		want []string
	}{
		{"m2", []string{"m1", "m2", "m3b", "m4b"}}, // the newest child at each step
		{"m3", []string{"m1", "m2", "m3", "m4"}},   // the old version
		{"m1", []string{"m1", "m2b", "m3c"}},       // a root, several levels up
		{"m4", []string{"m1", "m2", "m3", "m4"}},   // a leaf deep in another branch
		{"r2a", []string{"r2", "r2a"}},             // and back to the other root
		{"m3b", []string{"m1", "m2", "m3b", "m4b"}},
	}
	for _, step := range steps {
		answer := activate(t, s, a, convID, id(step.to))
		leaf := id(step.want[len(step.want)-1])
		if Str(answer, "active_leaf_id") != leaf {
			t.Errorf("switch to %s answered active_leaf_id %q, want %s's", step.to, Str(answer, "active_leaf_id"), step.want[len(step.want)-1])
		}
		if _, ok := answer["active_message_id"]; ok && Str(answer, "active_message_id") != "" {
			t.Errorf("the answer carries the input-only active_message_id: %v", answer)
		}
		if !sameJSON(answer, conversation(t, s, a, convID)) {
			t.Errorf("switch to %s: the answer is not the stored conversation", step.to)
		}
		expectActive(t, s, a, convID, step.want...)
	}
	// PUT is a partial update too.
	r := s.Do(t, "PUT", "/v1/conversations/"+convID, map[string]any{"active_message_id": id("r2")}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusOK, "PUT active_message_id")
	expectActive(t, s, a, convID, "r2", "r2a")
	activate(t, s, a, convID, id("m4"))
	if c := conversation(t, s, a, convID); countOf(c["message_count"]) != 10 || Str(c, "title") != "switching" {
		t.Errorf("switching changed more than the branch: %v", c)
	}
	// An output-only active_leaf_id in a PATCH is ignored.
	before := treeState(t, s, a, convID)
	mustStatus(t, s.Do(t, "PATCH", "/v1/conversations/"+convID, map[string]any{"active_leaf_id": id("r2a")},
		Bearer(a.Access)...), http.StatusOK, "PATCH active_leaf_id")
	if after := treeState(t, s, a, convID); after != before {
		t.Errorf("an output-only active_leaf_id changed the conversation:\nbefore %s\n after %s", before, after)
	}

	// Ids that are no message of this conversation: 404, all alike, and
	// nothing changes, not even the other fields of the body.
	other := Str(createTitled(t, s, a, "other"), "id")
	otherMsg := Str(createMessage(t, s, a, other, "user", "elsewhere"), "id")
	bConv := Str(createTitled(t, s, b, "b's"), "id")
	bMsg := Str(createMessage(t, s, b, bConv, "user", "b's message"), "id")
	patch := func(value any) Response {
		return s.Do(t, "PATCH", "/v1/conversations/"+convID,
			map[string]any{"active_message_id": value, "title": "changed", "pinned": true}, Bearer(a.Access)...)
	}
	unknown := patch(randomUUIDv7())
	ExpectError(t, unknown, http.StatusNotFound, "NOT_FOUND")
	for what, value := range map[string]string{
		"another conversation's message": otherMsg,
		"another user's message":         bMsg,
		"the conversation's own id":      convID,
		"the nil UUID":                   "00000000-0000-0000-0000-000000000000",
	} {
		t.Run(what, func(t *testing.T) { expectSameNotFound(t, patch(value), unknown) })
	}
	// Malformed: 400 on the field.
	for what, value := range map[string]any{"not a UUID": "not-a-uuid", "empty": "", "a UUID and more": otherMsg + "0"} {
		t.Run(what, func(t *testing.T) { expectInvalid(t, patch(value), "active_message_id") })
	}
	if after := treeState(t, s, a, convID); after != before {
		t.Errorf("refused switches changed the conversation:\nbefore %s\n after %s", before, after)
	}
	if got := contentsOf(allMessages(t, s, b, bConv, nil)); !slices.Equal(got, []string{"b's message"}) {
		t.Errorf("B's conversation %q", got)
	}

	// After switching, a create without parent_id continues the branch.
	m5 := createMessage(t, s, a, convID, "user", "m5")
	expectPlace(t, m5, id("m4"), 0, 1)
	expectActive(t, s, a, convID, "m1", "m2", "m3", "m4", "m5")
}

func TestTreeRegenerateStreamsANewSiblingReply(t *testing.T) {
	s, p := ChatStack(t)
	a, b := s.NewAccount(t), s.NewAccount(t)
	convID := newConversation(t, s, a)
	prompt := unique("Answer twice scenario:ok")
	user, first := chatTurn(t, s, a, convID, map[string]any{"content": prompt}, true)
	context := providerContext(p.Request(prompt))
	if want := []string{"system: You are a test assistant.", "user: " + prompt}; !slices.Equal(context, want) {
		t.Fatalf("first context %q, want %q", context, want)
	}

	for i, sse := range []bool{true, false} {
		again := regenerate(t, s, a, convID, Str(first, "id"), sse)
		if Str(again, "id") == Str(first, "id") || Str(again, "conversation_id") != convID {
			t.Errorf("regenerated %v", again)
		}
		expectPlace(t, again, Str(user, "id"), int64(i+1), int64(i+2))
		expectPlace(t, getOK(t, s, a, messagePath(convID, Str(first, "id"))), Str(user, "id"), 0, int64(i+2))
		if stored := getOK(t, s, a, messagePath(convID, Str(again, "id"))); !sameJSON(stored, again) {
			t.Errorf("done carried %v, stored %v", again, stored)
		}
		// The same context as the original reply.
		if got := providerContext(p.Request(prompt)); !slices.Equal(got, context) {
			t.Errorf("regenerate (sse %v) context %q, want %q", sse, got, context)
		}
		active := allMessages(t, s, a, convID, nil)
		if !slices.Equal(ids(active), []string{Str(user, "id"), Str(again, "id")}) {
			t.Errorf("active branch %v after regenerating", ids(active))
		}
		c := conversation(t, s, a, convID)
		if Str(c, "active_leaf_id") != Str(again, "id") || countOf(c["message_count"]) != int64(3+i) {
			t.Errorf("conversation after regenerating: %v", c)
		}
	}

	// Regenerating a reply that is not on the active branch's end: a later
	// turn is left behind, the new version becomes the active leaf, and the
	// context is still only what came before the original.
	next := unique("Then this scenario:ok")
	user2, _ := chatTurn(t, s, a, convID, map[string]any{"content": next}, false)
	if n := len(allMessages(t, s, a, convID, nil)); n != 4 {
		t.Fatalf("active branch has %d messages after a second turn", n)
	}
	fourth := regenerate(t, s, a, convID, Str(first, "id"), true)
	expectPlace(t, fourth, Str(user, "id"), 3, 4)
	if got := providerContext(p.Request(prompt)); !slices.Equal(got, context) {
		t.Errorf("context %q, want %q", got, context)
	}
	if got := ids(allMessages(t, s, a, convID, nil)); !slices.Equal(got, []string{Str(user, "id"), Str(fourth, "id")}) {
		t.Errorf("active branch %v, want the prompt and the newest version", got)
	}
	before := treeState(t, s, a, convID)
	if c := conversation(t, s, a, convID); countOf(c["message_count"]) != 7 {
		t.Errorf("message_count %v, want 7", c["message_count"])
	}

	// Refusals, before any stream starts, that change nothing.
	regen := func(who Account, conv, id string, body any) Response {
		return s.Do(t, "POST", messagePath(conv, id)+":regenerate", body, Bearer(who.Access)...)
	}
	r := regen(a, convID, Str(user2, "id"), map[string]any{})
	ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
	if fields := violationFields(r); !slices.Equal(fields, []string{"id"}) {
		t.Errorf("regenerating a user message: details %q", Violations(r))
	}
	missing := regen(a, convID, randomUUIDv7(), map[string]any{})
	ExpectError(t, missing, http.StatusNotFound, "NOT_FOUND")
	expectSameNotFound(t, regen(a, convID, "not-a-uuid", map[string]any{}), missing)
	bMissing := regen(b, convID, randomUUIDv7(), map[string]any{})
	expectSameNotFound(t, regen(b, convID, Str(first, "id"), map[string]any{}), bMissing)
	bConv := newConversation(t, s, b)
	expectSameNotFound(t, regen(b, bConv, Str(first, "id"), map[string]any{}), regen(b, bConv, randomUUIDv7(), map[string]any{}))
	if after := treeState(t, s, a, convID); after != before {
		t.Errorf("refused regenerations changed the conversation:\nbefore %s\n after %s", before, after)
	}

	// A regeneration takes one of the user's stream slots (one on this
	// stack), and the refusals above left none taken.
	slow := unique("Hold on scenario:slow")
	gate := p.Gate(slow)
	c := s.OpenChat(t, a.Access, convID, slow, true)
	openOK(t, c, true)
	c.Expect(t, "message")
	c.Expect(t, "reply")
	c.Expect(t, "delta")
	busy := regen(a, convID, Str(first, "id"), map[string]any{})
	ExpectError(t, busy, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED")
	if busy.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	close(gate)
	c.Expect(t, "delta")
	c.Expect(t, "done")
	c.Resp.Body.Close()
}

func TestTreeReplyContextIsThePathFromTheRootOnly(t *testing.T) {
	s, p := ChatStack(t)
	a := s.NewAccount(t)
	convID := newConversation(t, s, a)
	const system = "system: You are a test assistant."
	const reply = "assistant: Hello, world"
	expectContext := func(marker string, want ...string) {
		t.Helper()
		req := p.Request(marker)
		if req == nil {
			t.Fatalf("the provider saw no request for %q", marker)
		}
		if got := providerContext(req); !slices.Equal(got, want) {
			t.Errorf("context\n got %q\nwant %q", got, want)
		}
	}

	c1 := unique("Root question scenario:ok")
	u1, r1 := chatTurn(t, s, a, convID, map[string]any{"content": c1}, true)
	c2a := unique("Branch A scenario:ok")
	u2a, _ := chatTurn(t, s, a, convID, map[string]any{"content": c2a}, true)
	expectContext(c2a, system, "user: "+c1, reply, "user: "+c2a)

	// A second version of the second question, under the first reply.
	c2b := unique("Branch B scenario:ok")
	u2b, r2b := chatTurn(t, s, a, convID, map[string]any{"content": c2b, "parent_id": Str(r1, "id")}, false)
	expectPlace(t, u2b, Str(r1, "id"), 1, 2)
	expectContext(c2b, system, "user: "+c1, reply, "user: "+c2b)

	// Back on branch A, with one more message there; then a chat under
	// branch B's reply sees branch B only.
	activate(t, s, a, convID, Str(u2a, "id"))
	createMessage(t, s, a, convID, "user", "A follow-up, never context")
	c3b := unique("B follow-up scenario:ok")
	u3b, r3b := chatTurn(t, s, a, convID, map[string]any{"content": c3b, "parent_id": Str(r2b, "id")}, true)
	expectPlace(t, u3b, Str(r2b, "id"), 0, 1)
	expectContext(c3b, system, "user: "+c1, reply, "user: "+c2b, reply, "user: "+c3b)
	want := []string{Str(u1, "id"), Str(r1, "id"), Str(u2b, "id"), Str(r2b, "id"), Str(u3b, "id"), Str(r3b, "id")}
	if got := ids(allMessages(t, s, a, convID, nil)); !slices.Equal(got, want) {
		t.Errorf("active branch %v, want the path of the new reply %v", got, want)
	}
	if leaf := Str(conversation(t, s, a, convID), "active_leaf_id"); leaf != Str(r3b, "id") {
		t.Errorf("active_leaf_id %q, want the new reply", leaf)
	}

	// Without parent_id the chat continues the active branch, B.
	c4 := unique("Continue scenario:ok")
	chatTurn(t, s, a, convID, map[string]any{"content": c4}, false)
	expectContext(c4, system, "user: "+c1, reply, "user: "+c2b, reply, "user: "+c3b, reply, "user: "+c4)

	// An empty parent_id: a new root, with no context before it.
	c5 := unique("Fresh start scenario:ok")
	u5, _ := chatTurn(t, s, a, convID, map[string]any{"content": c5, "parent_id": ""}, true)
	expectPlace(t, u5, "", 1, 2)
	expectContext(c5, system, "user: "+c5)
	if n := len(allMessages(t, s, a, convID, nil)); n != 2 {
		t.Errorf("active branch has %d messages after a new root", n)
	}
	if n := countOf(conversation(t, s, a, convID)["message_count"]); n != 13 {
		t.Errorf("message_count %d, want 13", n)
	}
}

func TestTreeForkCopiesThePathIntoANewConversation(t *testing.T) {
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	srcID := Str(createTitled(t, s, a, "the source"), "id")
	first := s.Do(t, "POST", messagesPath(srcID),
		map[string]any{"role": "system", "content": "be brief", "metadata": map[string]any{"k": "v"}}, Bearer(a.Access)...)
	mustStatus(t, first, http.StatusCreated, "create")
	question := unique("Fork me scenario:ok")
	user, reply := chatTurn(t, s, a, srcID, map[string]any{"content": question}, true)
	createMessage(t, s, a, srcID, "user", "after the reply")
	// Another version of the question, so the forked path is not the
	// active branch.
	createUnder(t, s, a, srcID, Str(first.JSON, "id"), "user", "another question")
	path := []map[string]any{first.JSON, getOK(t, s, a, messagePath(srcID, Str(user, "id"))), reply}
	before := treeState(t, s, a, srcID)
	sourceIDs := map[string]bool{}
	for _, m := range allMessages(t, s, a, srcID, allBranches) {
		sourceIDs[Str(m, "id")] = true
	}

	r := s.Do(t, "POST", messagePath(srcID, Str(reply, "id"))+":fork", map[string]any{}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusCreated, "fork")
	fork := r.JSON
	forkID := Str(fork, "id")
	if !uuidV7Pattern.MatchString(forkID) || forkID == srcID || Str(fork, "title") != "the source" ||
		countOf(fork["message_count"]) != 3 || fork["archived"] != false || fork["pinned"] != false {
		t.Errorf("fork answered %s", r.Body)
	}
	if stored := conversation(t, s, a, forkID); !sameJSON(stored, fork) {
		t.Errorf("the fork's answer is not the stored conversation:\nanswer %v\nstored %v", fork, stored)
	}
	copies := allMessages(t, s, a, forkID, nil)
	if all := allMessages(t, s, a, forkID, allBranches); !sameJSON(all, copies) {
		t.Errorf("the fork has messages off its active branch: %v", ids(all))
	}
	if len(copies) != len(path) {
		t.Fatalf("the fork holds %d messages, want %d", len(copies), len(path))
	}
	parent := ""
	for i, c := range copies {
		orig := path[i]
		if sourceIDs[Str(c, "id")] || !uuidV7Pattern.MatchString(Str(c, "id")) || Str(c, "conversation_id") != forkID {
			t.Errorf("copy %d: id %q in conversation %q", i, Str(c, "id"), Str(c, "conversation_id"))
		}
		for _, field := range []string{"role", "content", "status", "model", "metadata"} {
			if !sameJSON(c[field], orig[field]) {
				t.Errorf("copy %d: %s %v, the original's %v", i, field, c[field], orig[field])
			}
		}
		if !timeField(t, c, "created_at").Equal(timeField(t, orig, "created_at")) {
			t.Errorf("copy %d: created_at %s, the original's %s", i, Str(c, "created_at"), Str(orig, "created_at"))
		}
		expectPlace(t, c, parent, 0, 1)
		parent = Str(c, "id")
	}
	if Str(copies[2], "model") != "fake-model-1" {
		t.Errorf("the copied reply's model %q", Str(copies[2], "model"))
	}
	if Str(fork, "active_leaf_id") != parent {
		t.Errorf("the fork's active_leaf_id %q, want its last copy %q", Str(fork, "active_leaf_id"), parent)
	}
	if unsetTime(fork, "last_message_at") || !timeField(t, fork, "last_message_at").Equal(timeField(t, reply, "created_at")) {
		t.Errorf("the fork's last_message_at %v, want the forked reply's created_at %s", fork["last_message_at"], Str(reply, "created_at"))
	}
	if after := treeState(t, s, a, srcID); after != before {
		t.Errorf("forking changed the source:\nbefore %s\n after %s", before, after)
	}

	// The fork lives on by itself.
	more := createMessage(t, s, a, forkID, "user", "only in the fork")
	expectPlace(t, more, parent, 0, 1)
	expectCounts(t, s, a, forkID, 4, more)
	if after := treeState(t, s, a, srcID); after != before {
		t.Errorf("appending to the fork changed the source")
	}

	// A title of its own; a fork of a root.
	r = s.Do(t, "POST", messagePath(srcID, Str(first.JSON, "id"))+":fork", map[string]any{"title": "x"}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusCreated, "fork with a title")
	if Str(r.JSON, "title") != "x" || countOf(r.JSON["message_count"]) != 1 {
		t.Errorf("fork with a title answered %s", r.Body)
	}
	if got := contentsOf(allMessages(t, s, a, Str(r.JSON, "id"), nil)); !slices.Equal(got, []string{"be brief"}) {
		t.Errorf("fork of the root holds %q", got)
	}

	// Refusals create nothing.
	convs := len(allConversations(t, s, a, nil))
	expectInvalid(t, s.Do(t, "POST", messagePath(srcID, Str(reply, "id"))+":fork", map[string]any{"title": ""}, Bearer(a.Access)...), "title")
	expectInvalid(t, s.Do(t, "POST", messagePath(srcID, Str(reply, "id"))+":fork",
		map[string]any{"title": strings.Repeat("é", 256)}, Bearer(a.Access)...), "title")
	missing := s.Do(t, "POST", messagePath(srcID, randomUUIDv7())+":fork", map[string]any{}, Bearer(a.Access)...)
	ExpectError(t, missing, http.StatusNotFound, "NOT_FOUND")
	// A message of the fork is no message of the source.
	expectSameNotFound(t, s.Do(t, "POST", messagePath(srcID, Str(more, "id"))+":fork", map[string]any{}, Bearer(a.Access)...), missing)
	b := s.NewAccount(t)
	bConv := newConversation(t, s, b)
	expectSameNotFound(t, s.Do(t, "POST", messagePath(bConv, Str(reply, "id"))+":fork", map[string]any{}, Bearer(b.Access)...),
		s.Do(t, "POST", messagePath(bConv, randomUUIDv7())+":fork", map[string]any{}, Bearer(b.Access)...))
	expectSameNotFound(t, s.Do(t, "POST", messagePath(srcID, Str(reply, "id"))+":fork", map[string]any{}, Bearer(b.Access)...),
		s.Do(t, "POST", messagePath(randomUUIDv7(), randomUUIDv7())+":fork", map[string]any{}, Bearer(b.Access)...))
	if n := len(allConversations(t, s, a, nil)); n != convs {
		t.Errorf("refused forks made %d conversations", n-convs)
	}
	if n := len(allConversations(t, s, b, nil)); n != 1 {
		t.Errorf("B has %d conversations after forking A's message", n)
	}
}

func TestTreeDeletingAMessageDeletesItsSubtree(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "pruning"), "id")
	m := grow(t, s, a, convID,
		node{"m1", "", "user"}, node{"m2", "m1", "assistant"},
		node{"m3", "m2", "user"}, node{"m4", "m3", "assistant"},
		node{"m3b", "m2", "user"}, node{"m4b", "m3b", "assistant"},
		node{"m2x", "m1", "assistant"}, node{"m3x", "m2x", "user"})
	id := func(name string) string { return Str(m[name], "id") }
	activate(t, s, a, convID, id("m3b"))
	expectActive(t, s, a, convID, "m1", "m2", "m3b", "m4b")
	expectCounts(t, s, a, convID, 8, m["m3x"])
	unknown := s.Do(t, "GET", messagePath(convID, randomUUIDv7()), nil, Bearer(a.Access)...)
	ExpectError(t, unknown, http.StatusNotFound, "NOT_FOUND")
	gone := func(deleted ...string) {
		t.Helper()
		for _, name := range deleted {
			expectSameNotFound(t, s.Do(t, "GET", messagePath(convID, id(name)), nil, Bearer(a.Access)...), unknown)
		}
	}
	prev := conversation(t, s, a, convID)
	advanced := func(what string) {
		t.Helper()
		c := conversation(t, s, a, convID)
		if !timeField(t, c, "updated_at").After(timeField(t, prev, "updated_at")) {
			t.Errorf("%s did not advance updated_at", what)
		}
		prev = c
	}

	// On the active branch, with descendants in two branches: the branch
	// ends at its parent, even though the parent has another child.
	expectNoContent(t, s.Do(t, "DELETE", messagePath(convID, id("m2")), nil, Bearer(a.Access)...), "delete m2")
	advanced("deleting an active subtree")
	gone("m2", "m3", "m4", "m3b", "m4b")
	expectCounts(t, s, a, convID, 3, m["m3x"])
	expectActive(t, s, a, convID, "m1")
	expectPlace(t, getOK(t, s, a, messagePath(convID, id("m2x"))), id("m1"), 0, 1)
	if got := contentsOf(allMessages(t, s, a, convID, allBranches)); !slices.Equal(got, []string{"m1", "m2x", "m3x"}) {
		t.Errorf("branch=all after deleting m2: %q", got)
	}

	// Off the active branch: the subtree goes, the branch stays.
	expectNoContent(t, s.Do(t, "DELETE", messagePath(convID, id("m2x")), nil, Bearer(a.Access)...), "delete m2x")
	advanced("deleting an inactive subtree")
	gone("m2x", "m3x")
	expectCounts(t, s, a, convID, 1, m["m1"])
	expectActive(t, s, a, convID, "m1")
	if got := contentsOf(allMessages(t, s, a, convID, allBranches)); !slices.Equal(got, []string{"m1"}) {
		t.Errorf("branch=all after the deletes: %q", got)
	}
	if n := sqlOne(t, s, "SELECT count(*) FROM messages WHERE conversation_id = '"+convID+"'"); n != "1" {
		t.Errorf("%s messages in the database, want 1", n)
	}
	expectSameNotFound(t, s.Do(t, "DELETE", messagePath(convID, id("m3b")), nil, Bearer(a.Access)...),
		s.Do(t, "DELETE", messagePath(convID, randomUUIDv7()), nil, Bearer(a.Access)...))

	// The next create goes under the new leaf, m1.
	m5 := createMessage(t, s, a, convID, "assistant", "m5")
	expectPlace(t, m5, id("m1"), 0, 1)
	expectActive(t, s, a, convID, "m1", "m5")
	expectCounts(t, s, a, convID, 2, m5)

	// The root: nothing is left.
	expectNoContent(t, s.Do(t, "DELETE", messagePath(convID, id("m1")), nil, Bearer(a.Access)...), "delete the root")
	expectCounts(t, s, a, convID, 0, nil)
	expectActive(t, s, a, convID)

	// Clearing a branched conversation: no branch is left, and the next
	// message is a root.
	grow(t, s, a, convID, node{"n1", "", "user"}, node{"n2", "n1", "assistant"}, node{"n2b", "n1", "assistant"},
		node{"r", "", "user"})
	expectNoContent(t, s.Do(t, "DELETE", messagesPath(convID), nil, Bearer(a.Access)...), "clear")
	expectCounts(t, s, a, convID, 0, nil)
	expectActive(t, s, a, convID)
	if got := allMessages(t, s, a, convID, allBranches); len(got) != 0 {
		t.Errorf("branch=all after clear: %q", contentsOf(got))
	}
	fresh := createMessage(t, s, a, convID, "user", "fresh")
	expectPlace(t, fresh, "", 0, 1)
	expectActive(t, s, a, convID, "fresh")
}

func TestTreeActiveBranchPagingUnderConcurrentAppends(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "paging a branch"), "id")
	// Two branches under one root, created alternately so their positions
	// interleave; then branch A is made active.
	const depth, appends, size = 15, 30, 5
	nodes := []node{{"root", "", "user"}}
	for i := 1; i <= depth; i++ {
		for _, br := range []string{"a", "b"} {
			parent := fmt.Sprintf("%s%02d", br, i-1)
			if i == 1 {
				parent = "root"
			}
			nodes = append(nodes, node{fmt.Sprintf("%s%02d", br, i), parent, "user"})
		}
	}
	m := grow(t, s, a, convID, nodes...)
	activate(t, s, a, convID, Str(m["a01"], "id"))
	initial := allMessages(t, s, a, convID, url.Values{"page_size": {"200"}})
	if len(initial) != depth+1 || Str(initial[depth], "content") != fmt.Sprintf("a%02d", depth) {
		t.Fatalf("the active branch before paging: %q", contentsOf(initial))
	}

	// One writer appends under the active leaf while the reader pages; the
	// reader starts once the first append is stored.
	started := make(chan struct{})
	writerDone := make(chan []string, 1)
	go func() {
		var problems []string
		for i := 0; i < appends; i++ {
			r, err := s.Try("POST", messagesPath(convID), map[string]any{"role": "assistant", "content": fmt.Sprintf("w%02d", i)},
				Bearer(a.Access)...)
			if err != nil || r.Status != http.StatusCreated {
				problems = append(problems, fmt.Sprintf("append %d: %v %d %.200s", i, err, r.Status, r.Body))
			}
			if i == 0 {
				close(started)
			}
		}
		writerDone <- problems
	}()
	<-started
	var seen []map[string]any
	q := url.Values{"page_size": {fmt.Sprint(size)}}
	for pages := 0; ; pages++ {
		if pages == 1000 {
			t.Fatal("the listing never ended")
		}
		body := getOK(t, s, a, messagesPath(convID)+"?"+q.Encode())
		page := items(body, "messages")
		if len(page) > size {
			t.Fatalf("a page of %d", len(page))
		}
		seen = append(seen, page...)
		next := Str(body, "next_page_token")
		if next == "" {
			break
		}
		q.Set("page_token", next)
	}
	for _, p := range <-writerDone {
		t.Error(p)
	}

	count := map[string]int{}
	for _, msg := range seen {
		count[Str(msg, "content")]++
		if strings.HasPrefix(Str(msg, "content"), "b") {
			t.Errorf("a message of the inactive branch was listed: %s", Str(msg, "content"))
		}
	}
	for _, msg := range initial {
		if n := count[Str(msg, "content")]; n != 1 {
			t.Errorf("%s listed %d times", Str(msg, "content"), n)
		}
	}
	final := allMessages(t, s, a, convID, url.Values{"page_size": {"200"}})
	if len(final) != depth+1+appends {
		t.Fatalf("%d messages on the active branch at the end, want %d", len(final), depth+1+appends)
	}
	// Root first, nothing skipped: what the reader saw is the start of the
	// final branch, and it holds at least every message from before.
	if len(seen) < len(initial) || len(seen) > len(final) || !slices.Equal(ids(seen), ids(final[:len(seen)])) {
		t.Errorf("the pages (%d messages) are not the start of the final branch:\n got %q\nfinal %q",
			len(seen), contentsOf(seen), contentsOf(final))
	}
	for i := 1; i < len(final); i++ {
		if Str(final[i], "parent_id") != Str(final[i-1], "id") {
			t.Errorf("the active branch is not a path at %d: %s under %q", i, Str(final[i], "content"), Str(final[i], "parent_id"))
		}
	}
	expectCounts(t, s, a, convID, int64(1+2*depth+appends), final[len(final)-1])
	t.Logf("the reader saw %d of %d messages", len(seen), len(final))
}

func TestTreeCreateWithAParentIsIdempotent(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "retried edits"), "id")
	m := grow(t, s, a, convID, node{"q1", "", "user"}, node{"r1", "q1", "assistant"}, node{"q2", "r1", "user"})
	key := randomKey()
	body := map[string]any{"role": "user", "content": "q2 edited", "parent_id": Str(m["r1"], "id")}
	post := func(body map[string]any, key string) Response {
		return s.Do(t, "POST", messagesPath(convID), body, append(Bearer(a.Access), "Idempotency-Key", key)...)
	}
	first := post(body, key)
	mustStatus(t, first, http.StatusCreated, "first create")
	expectPlace(t, first.JSON, Str(m["r1"], "id"), 1, 2)
	before := treeState(t, s, a, convID)

	again := post(body, key)
	mustStatus(t, again, http.StatusCreated, "retry")
	if !sameJSON(again.JSON, first.JSON) {
		t.Errorf("the retry answered\n %s\nnot\n %s", again.Body, first.Body)
	}
	if after := treeState(t, s, a, convID); after != before {
		t.Errorf("the retry changed the conversation:\nbefore %s\n after %s", before, after)
	}

	// A replay after the branch moved answers the same message and leaves
	// the branch where it is.
	activate(t, s, a, convID, Str(m["q2"], "id"))
	before = treeState(t, s, a, convID)
	again = post(body, key)
	mustStatus(t, again, http.StatusCreated, "retry after a switch")
	if Str(again.JSON, "id") != Str(first.JSON, "id") {
		t.Errorf("the retry after a switch answered %s", again.Body)
	}
	if after := treeState(t, s, a, convID); after != before {
		t.Errorf("the retry after a switch changed the conversation:\nbefore %s\n after %s", before, after)
	}

	// The same key with another parent, or none, is a conflict.
	for what, b := range map[string]map[string]any{
		"another parent": {"role": "user", "content": "q2 edited", "parent_id": Str(m["q1"], "id")},
		"a new root":     {"role": "user", "content": "q2 edited", "parent_id": ""},
		"no parent":      {"role": "user", "content": "q2 edited"},
	} {
		t.Run(what, func(t *testing.T) {
			r := post(b, key)
			ExpectError(t, r, http.StatusConflict, "ALREADY_EXISTS")
			if fields := violationFields(r); !slices.Equal(fields, []string{"idempotency_key"}) {
				t.Errorf("details %q", Violations(r))
			}
		})
	}
	if after := treeState(t, s, a, convID); after != before {
		t.Errorf("conflicting retries changed the conversation:\nbefore %s\n after %s", before, after)
	}
	// Another key: another version.
	other := post(body, randomKey())
	mustStatus(t, other, http.StatusCreated, "another key")
	expectPlace(t, other.JSON, Str(m["r1"], "id"), 2, 3)
	expectCounts(t, s, a, convID, 5, other.JSON)
}

func TestTreeMalformedInputIs400OnItsField(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "malformed"), "id")
	m1 := createMessage(t, s, a, convID, "user", "q1")
	r1 := createMessage(t, s, a, convID, "assistant", "r1")
	before := treeState(t, s, a, convID)

	for _, bad := range []string{"not-a-uuid", Str(m1, "id") + "x", " " + Str(m1, "id"), "42"} {
		t.Run("parent_id "+bad, func(t *testing.T) {
			expectInvalid(t, s.Do(t, "POST", messagesPath(convID),
				map[string]any{"role": "user", "content": "x", "parent_id": bad}, Bearer(a.Access)...), "parent_id")
			expectInvalid(t, s.Do(t, "POST", "/v1/conversations/"+convID+"/chat",
				map[string]any{"content": "x", "parent_id": bad}, Bearer(a.Access)...), "parent_id")
		})
	}
	// Every violation at once.
	r := s.Do(t, "POST", messagesPath(convID), map[string]any{"role": "robot", "content": "", "parent_id": "nope"}, Bearer(a.Access)...)
	expectInvalid(t, r, "role", "content", "parent_id")
	// Not a string.
	ExpectError(t, s.Do(t, "POST", messagesPath(convID), `{"role":"user","content":"x","parent_id":7}`, Bearer(a.Access)...),
		http.StatusBadRequest, "INVALID_ARGUMENT")

	list := func(query string) Response {
		return s.Do(t, "GET", messagesPath(convID)+"?"+query, nil, Bearer(a.Access)...)
	}
	expectInvalid(t, list("branch=sideways"), "branch")
	expectInvalid(t, list("branch=sideways&order=up"), "branch", "order")
	// A page token belongs to its branch choice.
	_, token := listPage(t, s, a, messagesPath(convID), "messages", url.Values{"branch": {"all"}, "page_size": {"1"}})
	if token == "" {
		t.Fatal("no page token")
	}
	expectInvalid(t, list("page_size=1&page_token="+url.QueryEscape(token)), "page_token")
	mustStatus(t, list("branch=all&page_size=1&page_token="+url.QueryEscape(token)), http.StatusOK, "the token on its own listing")

	// Unknown body fields on the custom methods.
	for _, c := range []struct{ verb, body string }{
		{":fork", `{"titel":"x"}`},
		{":fork", `{"title":"x","parent_id":""}`},
		{":regenerate", `{"content":"again"}`},
		{":regenerate", `{"model":"","temperature":0.5}`},
	} {
		t.Run(c.verb+" "+c.body, func(t *testing.T) {
			r := s.Do(t, "POST", messagePath(convID, Str(r1, "id"))+c.verb, c.body, Bearer(a.Access)...)
			ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
			if !strings.Contains(Str(r.JSON, "error", "message"), "unknown field") {
				t.Errorf("message %q", Str(r.JSON, "error", "message"))
			}
		})
	}
	if after := treeState(t, s, a, convID); after != before {
		t.Errorf("refused requests changed the conversation:\nbefore %s\n after %s", before, after)
	}
	if n := len(allConversations(t, s, a, nil)); n != 1 {
		t.Errorf("%d conversations after refused forks", n)
	}
}

// The nil UUID names no message: as a parent_id it is a missing parent
// like any other, not a second spelling of "" (a new root).
func TestTreeNilUUIDParentIsNotAMessage(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "nil parent"), "id")
	createMessage(t, s, a, convID, "user", "q1")
	before := treeState(t, s, a, convID)
	const nilUUID = "00000000-0000-0000-0000-000000000000"
	for _, path := range []string{messagesPath(convID), "/v1/conversations/" + convID + "/chat"} {
		body := map[string]any{"content": "x", "parent_id": randomUUIDv7()}
		if strings.HasSuffix(path, "/messages") {
			body["role"] = "user"
		}
		want := s.Do(t, "POST", path, body, Bearer(a.Access)...)
		ExpectError(t, want, http.StatusNotFound, "NOT_FOUND")
		body["parent_id"] = nilUUID
		got := s.Do(t, "POST", path, body, Bearer(a.Access)...)
		if got.Status != http.StatusNotFound {
			t.Errorf("POST %s with parent_id %s: %d %.300s; want 404 like a missing parent", path, nilUUID, got.Status, got.Body)
			continue
		}
		expectSameNotFound(t, got, want)
	}
	if after := treeState(t, s, a, convID); after != before {
		t.Errorf("a nil parent_id changed the conversation:\nbefore %s\n after %s", before, after)
	}
}

// SPEC's conversation and message objects, exactly: the tree fields are in
// every answer, and the input-only active_message_id in none.
func TestTreeAnswersHoldExactlyTheObjectFields(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	expectFields := func(what string, obj map[string]any, fields []string) {
		t.Helper()
		for _, f := range fields {
			if _, ok := obj[f]; !ok && f != "last_message_at" {
				t.Errorf("%s lacks %q: %v", what, f, obj)
			}
		}
		for f := range obj {
			if !slices.Contains(fields, f) {
				t.Errorf("%s has the field %q, which is not in the object: %v", what, f, obj[f])
			}
		}
	}
	c := createConversation(t, s, a, nil)
	convID := Str(c, "id")
	expectFields("create conversation", c, conversationFields)
	m := grow(t, s, a, convID, node{"q", "", "user"}, node{"r", "q", "assistant"}, node{"r2", "q", "assistant"})
	for name, msg := range m {
		expectFields("create message "+name, msg, messageFields)
	}
	expectFields("get message", getOK(t, s, a, messagePath(convID, Str(m["r"], "id"))), messageFields)
	for _, msg := range allMessages(t, s, a, convID, allBranches) {
		expectFields("listed message", msg, messageFields)
	}
	expectFields("get conversation", conversation(t, s, a, convID), conversationFields)
	expectFields("switch branch", activate(t, s, a, convID, Str(m["r"], "id")), conversationFields)
	for _, listed := range allConversations(t, s, a, nil) {
		expectFields("listed conversation", listed, conversationFields)
	}
	r := s.Do(t, "POST", messagePath(convID, Str(m["r"], "id"))+":fork", map[string]any{}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusCreated, "fork")
	expectFields("fork", r.JSON, conversationFields)
}

// Appends, versions and switches from several clients at once: every call
// succeeds, and the tree stays consistent (the active branch is a path
// from a root to active_leaf_id, which is a leaf; counts and sibling
// places are exact).
func TestTreeConcurrentAppendsVersionsAndSwitchesKeepTheTreeConsistent(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "busy tree"), "id")
	seed := grow(t, s, a, convID, node{"s1", "", "user"}, node{"s2", "s1", "assistant"}, node{"s3", "s2", "user"})
	var mu sync.Mutex
	known := []string{Str(seed["s1"], "id"), Str(seed["s2"], "id"), Str(seed["s3"], "id")}
	pick := func(i int) string {
		mu.Lock()
		defer mu.Unlock()
		return known[(i*7919)%len(known)]
	}
	const workers, each = 4, 15
	problems := make(chan string, workers*each)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				var r Response
				var err error
				want := http.StatusCreated
				content := fmt.Sprintf("w%d-%02d", w, i)
				switch (w + i) % 3 {
				case 0:
					r, err = s.Try("POST", messagesPath(convID), map[string]any{"role": "user", "content": content}, Bearer(a.Access)...)
				case 1:
					r, err = s.Try("POST", messagesPath(convID),
						map[string]any{"role": "assistant", "content": content, "parent_id": pick(w*each + i)}, Bearer(a.Access)...)
				case 2:
					want = http.StatusOK
					r, err = s.Try("PATCH", "/v1/conversations/"+convID,
						map[string]any{"active_message_id": pick(w*each + i)}, Bearer(a.Access)...)
				}
				if err != nil || r.Status != want {
					problems <- fmt.Sprintf("%s: %v %d %.300s", content, err, r.Status, r.Body)
					continue
				}
				if want == http.StatusCreated {
					mu.Lock()
					known = append(known, Str(r.JSON, "id"))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(problems)
	for p := range problems {
		t.Error(p)
	}

	all := allMessages(t, s, a, convID, allBranches)
	if len(all) != len(known) {
		t.Errorf("branch=all lists %d messages, %d were created", len(all), len(known))
	}
	children := map[string][]map[string]any{}
	for _, m := range all {
		children[Str(m, "parent_id")] = append(children[Str(m, "parent_id")], m)
	}
	for parent, kids := range children {
		for i, k := range kids {
			expectPlace(t, k, parent, int64(i), int64(len(kids)))
		}
	}
	active := allMessages(t, s, a, convID, url.Values{"page_size": {"7"}})
	parent := ""
	for _, m := range active {
		if Str(m, "parent_id") != parent {
			t.Fatalf("the active branch is not a path: %s under %q, after %q", Str(m, "content"), Str(m, "parent_id"), parent)
		}
		parent = Str(m, "id")
	}
	c := expectCounts(t, s, a, convID, int64(len(known)), all[len(all)-1])
	if Str(c, "active_leaf_id") != parent || parent == "" {
		t.Errorf("active_leaf_id %q, the active branch ends at %q", Str(c, "active_leaf_id"), parent)
	}
	if len(children[parent]) != 0 {
		t.Errorf("the active leaf %s has %d children", parent, len(children[parent]))
	}
}
