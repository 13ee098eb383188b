package e2e

// Export and import through the gateway (SPEC "Export and import"): an
// export imported into a fresh account reproduces every conversation and
// tree, the hand-written ChatGPT sample imports with its tree and active
// leaf, the same file twice imports nothing the second time, and a
// malformed file stores nothing.

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const chatgptSample = "testdata/chatgpt_conversations.json"

// exportOf runs GET /v1/export as a and returns its lines.
func exportOf(t *testing.T, s *Stack, a Account) []string {
	t.Helper()
	r := s.Do(t, "GET", "/v1/export", nil, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusOK, "export")
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("export Content-Type %q", ct)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("export line %d is not JSON: %v", i+1, err)
		}
		if _, failed := v["error"]; failed {
			t.Fatalf("export ended with an error: %s", l)
		}
	}
	return lines
}

// importFile posts body to /v1/import as a.
func importFile(t *testing.T, s *Stack, a Account, body string) Response {
	t.Helper()
	return s.Do(t, "POST", "/v1/import", body, Bearer(a.Access)...)
}

// expectImported checks a 200 {imported, skipped}.
func expectImported(t *testing.T, r Response, imported, skipped int64) {
	t.Helper()
	mustStatus(t, r, http.StatusOK, "import")
	if got, gotSkipped := asInt(r.JSON["imported"]), asInt(r.JSON["skipped"]); got != imported || gotSkipped != skipped {
		t.Fatalf("import answered %s, want imported %d, skipped %d", r.Body, imported, skipped)
	}
}

// everything is a's conversations (archived ones too), each with its
// messages of every branch and its active branch, by id.
func everything(t *testing.T, s *Stack, a Account) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, archived := range []string{"false", "true"} {
		for _, c := range allConversations(t, s, a, url.Values{"archived": {archived}}) {
			id := Str(c, "id")
			out[id] = map[string]any{
				"conversation": conversation(t, s, a, id),
				"all":          allMessages(t, s, a, id, allBranches),
				"active":       allMessages(t, s, a, id, nil),
			}
		}
	}
	return out
}

func TestExportImportRoundTrip(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)

	// A tree with an edit and a regenerated reply, metadata, a pinned and
	// an archived conversation, an empty one, and an active branch that
	// is not the newest.
	c1 := Str(createConversation(t, s, a, map[string]any{"title": "Trees 🌳", "metadata": map[string]string{"k": "v"}}), "id")
	made := grow(t, s, a, c1,
		node{"q1", "", "user"}, node{"a1", "q1", "assistant"}, node{"a1 again", "q1", "assistant"},
		node{"q2", "a1", "user"}, node{"q2 edited", "a1", "user"}, node{"a2", "q2 edited", "assistant"},
		node{"другой корень", "", "system"})
	activate(t, s, a, c1, Str(made["q2"], "id"))
	c2 := Str(createTitled(t, s, a, "Linear <b>&</b> \"quoted\""), "id")
	for i := range 5 {
		createMessage(t, s, a, c2, []string{"user", "assistant"}[i%2], fmt.Sprintf("line %d: é 日本 😀\nnext", i))
	}
	mustStatus(t, s.Do(t, "PATCH", "/v1/conversations/"+c2, map[string]any{"pinned": true}, Bearer(a.Access)...), 200, "pin")
	c3 := Str(createTitled(t, s, a, "Archived"), "id")
	createMessage(t, s, a, c3, "user", "old")
	mustStatus(t, s.Do(t, "PATCH", "/v1/conversations/"+c3, map[string]any{"archived": true}, Bearer(a.Access)...), 200, "archive")
	createTitled(t, s, a, "Empty")

	before := everything(t, s, a)
	if len(before) != 4 {
		t.Fatalf("%d conversations", len(before))
	}
	exported := exportOf(t, s, a)
	if len(exported) != 4 {
		t.Fatalf("export has %d lines, want 4", len(exported))
	}

	b := s.NewAccount(t)
	file := strings.Join(exported, "\n") + "\n"
	expectImported(t, importFile(t, s, b, file), 4, 0)
	after := everything(t, s, b)
	if !sameJSON(after, before) {
		for id, want := range before {
			if got := after[id]; !sameJSON(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("conversation %s:\n got %s\nwant %s", id, g, w)
			}
		}
		t.Fatalf("the import does not reproduce the export")
	}
	// The export of the copy is the export of the original.
	if again := exportOf(t, s, b); !slices.Equal(again, exported) {
		t.Errorf("the copy exports differently:\n%s\nvs\n%s", strings.Join(again, "\n"), strings.Join(exported, "\n"))
	}

	// The same file again: nothing new.
	expectImported(t, importFile(t, s, b, file), 0, 4)
	if !sameJSON(everything(t, s, b), before) {
		t.Errorf("a second import changed something")
	}
	// And the original owner is untouched.
	if !sameJSON(everything(t, s, a), before) {
		t.Errorf("the import changed the exporting account")
	}
}

// uuid5 is the id docs/api.md gives an imported ChatGPT conversation or
// node: a version 5 UUID of "chatgpt/<conversation id>[/<node id>]".
func uuid5(name string) string {
	ns := []byte{0x68, 0x0d, 0xed, 0xd9, 0x50, 0x7a, 0x4d, 0xf5, 0x90, 0x70, 0x09, 0xaa, 0x1d, 0x23, 0x40, 0x3c}
	sum := sha1.Sum(append(ns, name...))
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}

func TestImportChatGPTSample(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	file, err := os.ReadFile(chatgptSample)
	if err != nil {
		t.Fatal(err)
	}
	expectImported(t, importFile(t, s, a, string(file)), 3, 0)

	const kyoto = "6560a1b2-0c3d-4e5f-8a9b-0c1d2e3f4a5b"
	node := func(id string) string { return uuid5("chatgpt/" + kyoto + "/" + id) }
	conv := conversation(t, s, a, uuid5("chatgpt/"+kyoto))
	if Str(conv, "title") != "Kyoto in autumn 🍁" || asInt(conv["message_count"]) != 7 {
		t.Errorf("conversation = %v", conv)
	}
	// current_node is not the newest leaf: it stays the active leaf.
	if got, want := Str(conv, "active_leaf_id"), node("9e5f6071-7777-4077-b777-000000000008"); got != want {
		t.Errorf("active_leaf_id = %s, want %s", got, want)
	}
	if got := timeField(t, conv, "created_at").UnixMicro(); got != 1700000000123456 {
		t.Errorf("created_at = %d µs", got)
	}

	// The tree: the root and the hidden empty system message are gone;
	// the edit and the regenerated reply are siblings.
	type msg struct{ id, parent, role, content string }
	want := []msg{
		{"aaa2c3d4-2222-4b22-a222-000000000003", "", "user", "Plan three days in Kyoto in November, please."},
		{"7c3d4e5f-3333-4c33-b333-000000000004", "aaa2c3d4-2222-4b22-a222-000000000003", "assistant", "Kyoto in November is lovely. Shall I focus on temples or on food?"},
		{"8d4e5f60-4444-4d44-8444-000000000005", "aaa2c3d4-2222-4b22-a222-000000000003", "assistant", "Day 1: Fushimi Inari at dawn, then Tōfuku-ji for the maples.\nDay 2: Arashiyama.\nDay 3: Higashiyama and Gion."},
		{"aaa3d4e5-5555-4e55-9555-000000000006", "8d4e5f60-4444-4d44-8444-000000000005", "user", "What should I eat? 🍜"},
		{"9e5f6071-7777-4077-b777-000000000008", "aaa3d4e5-5555-4e55-9555-000000000006", "assistant", "Try yudōfu near Nanzen-ji, and kaiseki in Gion — 湯豆腐 is a Kyoto classic."},
		{"aaa4e5f6-6666-4f66-a666-000000000007", "8d4e5f60-4444-4d44-8444-000000000005", "user", "What should I eat? I'm vegetarian."},
		{"af607182-8888-4188-8888-000000000009", "aaa4e5f6-6666-4f66-a666-000000000007", "assistant", "Shōjin ryōri, the temple cuisine, is all vegetarian: Shigetsu at Tenryū-ji serves it."},
	}
	all := allMessages(t, s, a, uuid5("chatgpt/"+kyoto), allBranches)
	if len(all) != len(want) {
		t.Fatalf("%d messages, want %d: %v", len(all), len(want), contentsOf(all))
	}
	for i, w := range want {
		m := all[i]
		parent := ""
		if w.parent != "" {
			parent = node(w.parent)
		}
		if Str(m, "id") != node(w.id) || Str(m, "parent_id") != parent || Str(m, "role") != w.role || Str(m, "content") != w.content {
			t.Errorf("message %d = %v, want %+v", i, m, w)
		}
	}
	siblings := map[string][2]int64{}
	for _, m := range all {
		siblings[Str(m, "content")] = [2]int64{asInt(m["sibling_index"]), asInt(m["sibling_count"])}
	}
	if siblings[want[1].content] != [2]int64{0, 2} || siblings[want[2].content] != [2]int64{1, 2} ||
		siblings[want[3].content] != [2]int64{0, 2} || siblings[want[5].content] != [2]int64{1, 2} {
		t.Errorf("siblings = %v", siblings)
	}
	expectActive(t, s, a, uuid5("chatgpt/"+kyoto), want[0].content, want[2].content, want[3].content, want[4].content)

	// The multimodal conversation: the system message kept, the image
	// part and the tool output dropped.
	photo := uuid5("chatgpt/65a0b1c2-1d2e-4f30-9a41-b2c3d4e5f607")
	got := contentsOf(allMessages(t, s, a, photo, allBranches))
	if len(got) != 4 || got[1] != "Что на этой картинке? 日本語でも説明してください。" ||
		got[3] != "На фото — клёны в храме Тофуку-дзи осенью.\n写真は秋の東福寺の紅葉です。🍁" {
		t.Errorf("photo conversation = %q", got)
	}
	// The archived one.
	short := conversation(t, s, a, uuid5("chatgpt/65e0c1d2-2e3f-4a50-8b61-c2d3e4f5a617"))
	if Get(short, "archived") != true {
		t.Errorf("archived = %v", Get(short, "archived"))
	}

	// Twice: nothing the second time.
	before := everything(t, s, a)
	expectImported(t, importFile(t, s, a, string(file)), 0, 3)
	if !sameJSON(everything(t, s, a), before) {
		t.Errorf("the second import changed something")
	}
}

func TestImportMalformedStoresNothing(t *testing.T) {
	s := SharedStack(t)
	sample, err := os.ReadFile(chatgptSample)
	if err != nil {
		t.Fatal(err)
	}
	good := `{"conversation":{"id":"` + randomUUIDv7() + `","title":"fine"},"messages":[{"id":"` + randomUUIDv7() + `","role":"user","content":"hello"}]}`
	cut := string(sample[:bytes.Index(sample, []byte(`"Short one"`))])
	// A first line long enough that the gateway has sent batches of it
	// (500 items each) before it reads the bad second line.
	var long strings.Builder
	fmt.Fprintf(&long, `{"conversation":{"id":%q,"title":"long"},"messages":[`, randomUUIDv7())
	parent := ""
	for i := range 1200 {
		if i > 0 {
			long.WriteByte(',')
		}
		id := randomUUIDv7()
		fmt.Fprintf(&long, `{"id":%q,"parent_id":%q,"role":"user","content":"message %d"}`, id, parent, i)
		parent = id
	}
	long.WriteString("]}\n")
	for _, tc := range []struct {
		name, body, where string
	}{
		{"a bad line after batches were sent", long.String() + `{"conversation":{"id":"x"},"messages":[{"id":"y","role":"user"`, "line 2, messages[0]"},
		{"a bad second line", good + "\n" + `{"conversation":{"id":"x","title":5}}`, "line 2, conversation"},
		{"a bad role", good + "\n" + `{"conversation":{"id":"` + randomUUIDv7() + `"},"messages":[{"id":"` + randomUUIDv7() + `","role":"tool","content":"x"}]}`, "line 2, messages[0]"},
		{"bad UTF-8", good + "\n" + `{"conversation":{"id":"` + randomUUIDv7() + `","title":"caf` + "\xe9" + `"}}`, "line 2"},
		{"a parent that is not earlier", `{"conversation":{"id":"` + randomUUIDv7() + `"},"messages":[{"id":"` + randomUUIDv7() +
			`","role":"user","content":"a"},{"id":"` + randomUUIDv7() + `","parent_id":"` + randomUUIDv7() + `","role":"user","content":"b"}]}`, "line 1, messages[1]"},
		{"a content too long", good + "\n" + `{"conversation":{"id":"` + randomUUIDv7() + `"},"messages":[{"id":"` + randomUUIDv7() +
			`","role":"user","content":"` + strings.Repeat("x", 100001) + `"}]}`, "line 2, messages[0]"},
		{"a truncated ChatGPT file", cut, "$[2]"},
		{"a ChatGPT node with an unknown role", strings.Replace(string(sample), `"role": "tool"`, `"role": "robot"`, 1),
			`$[1].mapping["b4444444-4444-4444-8444-00000000000e"].message.author.role`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := s.NewAccount(t)
			r := importFile(t, s, a, tc.body)
			ExpectError(t, r, 400, "INVALID_ARGUMENT")
			if msg := Str(r.JSON, "error", "message"); !strings.HasPrefix(msg, tc.where+":") {
				t.Errorf("message %q does not start with %q", msg, tc.where+":")
			}
			if n := len(everything(t, s, a)); n != 0 {
				t.Errorf("%d conversations stored", n)
			}
		})
	}
}

func TestTransferNeedsAToken(t *testing.T) {
	s := SharedStack(t)
	ExpectError(t, s.Do(t, "GET", "/v1/export", nil), 401, "UNAUTHENTICATED")
	ExpectError(t, s.Do(t, "POST", "/v1/import", "", "Authorization", "Bearer nope"), 401, "UNAUTHENTICATED")
}

// tryTransfer sends a request until it is not a 429: the message service
// runs MAX_TRANSFERS transfers at once (2 by default) and answers the rest
// 429 with Retry-After, which an impatient client retries sooner.
func tryTransfer(s *Stack, method, path string, body any, headers ...string) (Response, error) {
	for {
		r, err := s.Try(method, path, body, headers...)
		if err != nil || r.Status != http.StatusTooManyRequests {
			return r, err
		}
		if r.Header.Get("Retry-After") == "" {
			return r, fmt.Errorf("429 without Retry-After: %s", r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Imports and exports of several users at once, good files and bad ones:
// each gets its own answer, and the bad ones store nothing.
func TestTransferParallel(t *testing.T) {
	s := SharedStack(t)
	sample, err := os.ReadFile(chatgptSample)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(sample), `"role": "tool"`, `"role": 7`, 1)
	const n = 16
	accounts := make([]Account, n)
	for i := range accounts {
		accounts[i] = s.NewAccount(t)
	}
	var wg sync.WaitGroup
	errs := make(chan string, n*2)
	for i, a := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, want := string(sample), 200
			if i%2 == 1 {
				body, want = bad, 400
			}
			r, err := tryTransfer(s, "POST", "/v1/import", body, Bearer(a.Access)...)
			if err != nil || r.Status != want {
				errs <- fmt.Sprintf("import %d: %v %d %s", i, err, r.Status, r.Body)
				return
			}
			r, err = tryTransfer(s, "GET", "/v1/export", nil, Bearer(a.Access)...)
			lines := bytes.Count(r.Body, []byte("\n"))
			if err != nil || r.Status != 200 || (want == 200) != (lines == 3) || (want == 400) != (lines == 0) {
				errs <- fmt.Sprintf("export %d: %v %d, %d lines", i, err, r.Status, lines)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
