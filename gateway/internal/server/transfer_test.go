package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/server"
)

// The hand-written ChatGPT sample that the end-to-end tests import too.
const chatgptSample = "../../../tests/e2e/testdata/chatgpt_conversations.json"

func testConversation(id string) *chatv1.Conversation {
	return &chatv1.Conversation{
		Id: id, Title: "title of " + id, Metadata: map[string]string{"k": "v"},
		CreatedAt: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)),
	}
}

func testMessage(conv string, i int) *chatv1.Message {
	parent := ""
	if i > 0 {
		parent = fmt.Sprintf("%s-m%d", conv, i-1)
	}
	return &chatv1.Message{
		Id: fmt.Sprintf("%s-m%d", conv, i), ConversationId: conv, ParentId: &parent,
		Role: []string{"user", "assistant"}[i%2], Content: fmt.Sprintf("message %d of %s: é 日本 🍁\n\"q\"", i, conv),
		Status: "complete", SiblingCount: 1,
	}
}

// exportOf sends conversations c0..c(n-1); conversation i has sizes[i]
// messages, sent in chunks of at most chunk messages.
func exportOf(sizes []int, chunk int) func(grpc.ServerStreamingServer[chatv1.ExportChunk]) error {
	return func(s grpc.ServerStreamingServer[chatv1.ExportChunk]) error {
		for i, n := range sizes {
			conv := fmt.Sprintf("c%d", i)
			c := &chatv1.ExportChunk{Conversation: testConversation(conv)}
			for j := 0; j < n; j++ {
				c.Messages = append(c.Messages, testMessage(conv, j))
				if len(c.Messages) == chunk {
					if err := s.Send(c); err != nil {
						return err
					}
					c = &chatv1.ExportChunk{}
				}
			}
			if c.Conversation != nil || len(c.Messages) > 0 {
				if err := s.Send(c); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

type exportLine struct {
	Conversation json.RawMessage   `json:"conversation"`
	Messages     []json.RawMessage `json:"messages"`
}

// checkExportLines checks that body holds the export of sizes.
func checkExportLines(t *testing.T, body []byte, sizes []int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(sizes) == 0 {
		if len(body) != 0 {
			t.Fatalf("empty export: body %q", body)
		}
		return
	}
	if len(lines) != len(sizes) {
		t.Fatalf("%d lines, want %d", len(lines), len(sizes))
	}
	for i, line := range lines {
		var l exportLine
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %d: %v: %.200s", i+1, err, line)
		}
		conv := fmt.Sprintf("c%d", i)
		if want := mustProtoJSON(t, testConversation(conv)); !jsonEqual(l.Conversation, want) {
			t.Errorf("line %d: conversation = %s, want %s", i+1, l.Conversation, want)
		}
		if len(l.Messages) != sizes[i] {
			t.Fatalf("line %d: %d messages, want %d", i+1, len(l.Messages), sizes[i])
		}
		for j, m := range l.Messages {
			if want := mustProtoJSON(t, testMessage(conv, j)); !jsonEqual(m, want) {
				t.Fatalf("line %d, message %d = %s, want %s", i+1, j, m, want)
			}
		}
	}
}

// mustProtoJSON is m as every answer writes it: snake_case, every field.
func mustProtoJSON(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

func TestExportFraming(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int
		chunk int
	}{
		{"none", nil, 10},
		{"empty conversations", []int{0, 0}, 10},
		{"several", []int{3, 0, 1, 7}, 2},
		{"many chunks", []int{5, 2500, 4}, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, b := newGateway(t, server.Options{})
			b.setExport(exportOf(tc.sizes, tc.chunk))
			r := g.do("GET", "/v1/export", "", "Authorization", "Bearer tok", "X-Request-Id", "exp-1")
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cd := r.header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="chat-export-`) {
				t.Errorf("Content-Disposition = %q", cd)
			}
			checkExportLines(t, r.body, tc.sizes)
			c := b.lastCall(t)
			if c.method != "Export" || c.md.Get("authorization")[0] != "Bearer tok" || c.md.Get("x-request-id")[0] != "exp-1" {
				t.Errorf("call %s with metadata %v", c.method, c.md)
			}
		})
	}
}

// Lines reach the client while the export runs: the first is readable
// before the service sends the second conversation.
func TestExportStreamsLines(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	release := make(chan struct{})
	b.setExport(func(s grpc.ServerStreamingServer[chatv1.ExportChunk]) error {
		if err := s.Send(&chatv1.ExportChunk{Conversation: testConversation("c0"), Messages: []*chatv1.Message{testMessage("c0", 0)}}); err != nil {
			return err
		}
		if err := s.Send(&chatv1.ExportChunk{Conversation: testConversation("c1")}); err != nil {
			return err
		}
		<-release
		return nil
	})
	resp, err := http.Get(g.url + "/v1/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	checkExportLines(t, []byte(line), []int{1})
}

func TestExportErrorBeforeFirstLine(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	b.setExport(func(grpc.ServerStreamingServer[chatv1.ExportChunk]) error {
		return status.Error(codes.ResourceExhausted, "too many exports at once")
	})
	r := g.do("GET", "/v1/export", "")
	e := envelopeOf(t, r, 429, "RESOURCE_EXHAUSTED")
	if e.Error.Message != "too many exports at once" {
		t.Errorf("message = %q", e.Error.Message)
	}

	b.setFail(status.Error(codes.Unauthenticated, "missing token"))
	envelopeOf(t, g.do("GET", "/v1/export", ""), 401, "UNAUTHENTICATED")

	// A service that breaks the contract (messages before a conversation)
	// is an internal error, not a malformed line.
	b.setFail(nil)
	b.setExport(func(s grpc.ServerStreamingServer[chatv1.ExportChunk]) error {
		return s.Send(&chatv1.ExportChunk{Messages: []*chatv1.Message{testMessage("c0", 0)}})
	})
	envelopeOf(t, g.do("GET", "/v1/export", ""), 500, "INTERNAL")
}

func TestExportErrorAfterFirstLine(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	b.setExport(func(s grpc.ServerStreamingServer[chatv1.ExportChunk]) error {
		if err := exportOf([]int{2}, 10)(s); err != nil {
			return err
		}
		// The second conversation breaks off within its messages.
		if err := s.Send(&chatv1.ExportChunk{Conversation: testConversation("c1"), Messages: []*chatv1.Message{testMessage("c1", 0)}}); err != nil {
			return err
		}
		return status.Error(codes.Internal, "pq: connection reset at /var/lib/x")
	})
	r := g.do("GET", "/v1/export", "", "X-Request-Id", "exp-err")
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	lines := strings.Split(strings.TrimSuffix(string(r.body), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("lines = %q", lines)
	}
	checkExportLines(t, []byte(lines[0]), []int{2})
	var l exportLine
	if err := json.Unmarshal([]byte(lines[1]), &l); err != nil || len(l.Messages) != 1 {
		t.Errorf("the cut line is not closed: %v: %s", err, lines[1])
	}
	e := envelopeFrom(t, lines[2])
	if e.Error.Code != "INTERNAL" || e.Error.Message != "internal error" || e.Error.RequestID != "exp-err" {
		t.Errorf("error line = %s", lines[2])
	}
	if !strings.Contains(g.logs.String(), "export failed after the first line") ||
		!strings.Contains(g.logs.String(), "connection reset") {
		t.Errorf("the failure is not logged: %s", g.logs.String())
	}
}

// An export goes back in as it came out: the same items, in order.
func TestExportImportRoundTrip(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	sizes := []int{3, 0, 1200}
	b.setExport(exportOf(sizes, 100))
	exported := g.do("GET", "/v1/export", "")
	if exported.status != 200 {
		t.Fatalf("export: %d", exported.status)
	}
	r := g.do("POST", "/v1/import", string(exported.body), "Authorization", "Bearer tok", "X-Request-Id", "imp-1")
	if r.status != 200 {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	var resp struct {
		Imported *int `json:"imported"`
		Skipped  *int `json:"skipped"`
	}
	if err := json.Unmarshal(r.body, &resp); err != nil || resp.Imported == nil || *resp.Imported != 3 ||
		resp.Skipped == nil || *resp.Skipped != 0 {
		t.Errorf("answer = %s", r.body)
	}
	c := b.nextImport(t)
	if c.cancelled || c.err != nil || !c.ended {
		t.Fatalf("import call ended with %v (end %v)", c.err, c.ended)
	}
	if c.md.Get("authorization")[0] != "Bearer tok" || c.md.Get("x-request-id")[0] != "imp-1" {
		t.Errorf("metadata = %v", c.md)
	}
	var want []*chatv1.ImportItem
	for i, n := range sizes {
		conv := fmt.Sprintf("c%d", i)
		want = append(want, &chatv1.ImportItem{Source: fmt.Sprintf("line %d", i+1),
			Item: &chatv1.ImportItem_Conversation{Conversation: testConversation(conv)}})
		for j := 0; j < n; j++ {
			want = append(want, &chatv1.ImportItem{Source: fmt.Sprintf("line %d, messages[%d]", i+1, j),
				Item: &chatv1.ImportItem_Message{Message: testMessage(conv, j)}})
		}
	}
	checkItems(t, c.items, want)
	if len(c.batches) < 3 {
		t.Errorf("batches = %v: 1204 items should not fit in one", c.batches)
	}
	for _, n := range c.batches {
		if n > 500 {
			t.Errorf("a batch of %d items", n)
		}
	}
}

func checkItems(t *testing.T, got, want []*chatv1.ImportItem) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d items, want %d", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("item %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// uuid5 is the version 5 UUID of name under the namespace docs/api.md
// gives for ChatGPT imports, computed here independently of the gateway.
func uuid5(name string) string {
	ns := []byte{0x68, 0x0d, 0xed, 0xd9, 0x50, 0x7a, 0x4d, 0xf5, 0x90, 0x70, 0x09, 0xaa, 0x1d, 0x23, 0x40, 0x3c}
	sum := sha1.Sum(append(ns, name...))
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}

type gptWant struct {
	node, parent, role, content, status, model string
}

func TestImportChatGPTSample(t *testing.T) {
	file, err := os.ReadFile(chatgptSample)
	if err != nil {
		t.Fatal(err)
	}
	g, b := newGateway(t, server.Options{})
	var runs [][]*chatv1.ImportItem
	for range 2 {
		r := g.do("POST", "/v1/import", string(file))
		if r.status != 200 || !jsonEqual(r.body, []byte(`{"imported":3,"skipped":0}`)) {
			t.Fatalf("import: %d %s", r.status, r.body)
		}
		runs = append(runs, b.nextImport(t).items)
	}
	// The same file maps to the same ids (and everything else) each time.
	checkItems(t, runs[1], runs[0])
	items := runs[0]

	const (
		c1 = "6560a1b2-0c3d-4e5f-8a9b-0c1d2e3f4a5b"
		c2 = "65a0b1c2-1d2e-4f30-9a41-b2c3d4e5f607"
		c3 = "65e0c1d2-2e3f-4a50-8b61-c2d3e4f5a617"
	)
	type conv struct {
		id, title, leaf string
		archived        bool
		created         float64
		messages        []gptWant
	}
	convs := []conv{
		{c1, "Kyoto in autumn 🍁", "9e5f6071-7777-4077-b777-000000000008", false, 1700000000.123456, []gptWant{
			// The root and the hidden empty system message are dropped;
			// parents first, then by create_time (a1 is later in the file
			// than a1b but older).
			{"aaa2c3d4-2222-4b22-a222-000000000003", "", "user", "Plan three days in Kyoto in November, please.", "complete", ""},
			{"7c3d4e5f-3333-4c33-b333-000000000004", "aaa2c3d4-2222-4b22-a222-000000000003", "assistant", "Kyoto in November is lovely. Shall I focus on temples or on food?", "complete", "gpt-4"},
			{"8d4e5f60-4444-4d44-8444-000000000005", "aaa2c3d4-2222-4b22-a222-000000000003", "assistant", "Day 1: Fushimi Inari at dawn, then Tōfuku-ji for the maples.\nDay 2: Arashiyama.\nDay 3: Higashiyama and Gion.", "complete", "gpt-4o"},
			{"aaa3d4e5-5555-4e55-9555-000000000006", "8d4e5f60-4444-4d44-8444-000000000005", "user", "What should I eat? 🍜", "complete", ""},
			{"9e5f6071-7777-4077-b777-000000000008", "aaa3d4e5-5555-4e55-9555-000000000006", "assistant", "Try yudōfu near Nanzen-ji, and kaiseki in Gion — 湯豆腐 is a Kyoto classic.", "complete", "gpt-4o"},
			{"aaa4e5f6-6666-4f66-a666-000000000007", "8d4e5f60-4444-4d44-8444-000000000005", "user", "What should I eat? I'm vegetarian.", "complete", ""},
			{"af607182-8888-4188-8888-000000000009", "aaa4e5f6-6666-4f66-a666-000000000007", "assistant", "Shōjin ryōri, the temple cuisine, is all vegetarian: Shigetsu at Tenryū-ji serves it.", "complete", "gpt-4o"},
		}},
		{c2, "Что на фото? / 写真", "b5555555-5555-4555-8555-00000000000f", false, 1705000000, []gptWant{
			{"b1111111-1111-4111-8111-00000000000b", "", "system", "You are a concise assistant. Answer in the language of the question.", "complete", ""},
			// The image part is dropped, the text part kept.
			{"b2222222-2222-4222-8222-00000000000c", "b1111111-1111-4111-8111-00000000000b", "user", "Что на этой картинке? 日本語でも説明してください。", "complete", ""},
			{"b3333333-3333-4333-8333-00000000000d", "b2222222-2222-4222-8222-00000000000c", "assistant", "from PIL import Image\nImage.open('/mnt/data/IMG_2041.jpeg').size", "complete", "gpt-4o"},
			// The tool's output is dropped; the answer hangs from the call.
			{"b5555555-5555-4555-8555-00000000000f", "b3333333-3333-4333-8333-00000000000d", "assistant", "На фото — клёны в храме Тофуку-дзи осенью.\n写真は秋の東福寺の紅葉です。🍁", "complete", "gpt-4o"},
		}},
		{c3, "Short one", "c2222222-2222-4222-8222-000000000012", true, 1710000000, []gptWant{
			{"c1111111-1111-4111-8111-000000000011", "", "user", "Write me a haiku about <b>tags</b> & \"quotes\".", "complete", ""},
			{"c2222222-2222-4222-8222-000000000012", "c1111111-1111-4111-8111-000000000011", "assistant", "Angle brackets bloom\n", "incomplete", "gpt-4o-mini"},
		}},
	}
	var want []*chatv1.ImportItem
	for i, c := range convs {
		want = append(want, &chatv1.ImportItem{Source: fmt.Sprintf("$[%d]", i), Item: &chatv1.ImportItem_Conversation{Conversation: &chatv1.Conversation{
			Id: uuid5("chatgpt/" + c.id), Title: c.title, Archived: c.archived,
			Metadata:     map[string]string{"imported_from": "chatgpt", "chatgpt_id": c.id},
			ActiveLeafId: uuid5("chatgpt/" + c.id + "/" + c.leaf),
		}}})
		for _, m := range c.messages {
			parent := ""
			if m.parent != "" {
				parent = uuid5("chatgpt/" + c.id + "/" + m.parent)
			}
			want = append(want, &chatv1.ImportItem{
				Source: fmt.Sprintf("$[%d].mapping[%q].message", i, m.node),
				Item: &chatv1.ImportItem_Message{Message: &chatv1.Message{
					Id: uuid5("chatgpt/" + c.id + "/" + m.node), ParentId: &parent,
					Role: m.role, Content: m.content, Status: m.status, Model: m.model,
				}},
			})
		}
	}
	// Times are checked apart.
	created := map[string]time.Time{}
	for _, it := range items {
		if c := it.GetConversation(); c != nil {
			created[c.GetId()] = c.GetCreatedAt().AsTime()
			c.CreatedAt, c.UpdatedAt = nil, nil
		}
		if m := it.GetMessage(); m != nil {
			if m.GetCreatedAt() == nil || m.GetUpdatedAt().AsTime().Before(m.GetCreatedAt().AsTime()) {
				t.Errorf("%s: times %v %v", it.GetSource(), m.GetCreatedAt(), m.GetUpdatedAt())
			}
			m.CreatedAt, m.UpdatedAt = nil, nil
		}
	}
	checkItems(t, items, want)
	for _, c := range convs {
		got := created[uuid5("chatgpt/"+c.id)]
		if want := time.UnixMicro(int64(c.created * 1e6)); !got.Equal(want) {
			t.Errorf("%s created at %v, want %v", c.id, got, want)
		}
	}
	if got := runs[1][1].GetMessage().GetCreatedAt().AsTime(); !got.Equal(time.UnixMicro(1700000010250000)) {
		t.Errorf("first message created at %v", got)
	}
}

// gptFile is a ChatGPT export with one conversation whose mapping is
// nodes (JSON members "id": {...}).
func gptFile(current string, nodes ...string) string {
	return `[{"title":"t","create_time":1700000000,"update_time":null,"id":"conv-1","conversation_id":"conv-1",` +
		`"current_node":` + current + `,"mapping":{` + strings.Join(nodes, ",") + `}}]`
}

func gptNode(id, parent, role, text string) string {
	p := "null"
	if parent != "" {
		p = `"` + parent + `"`
	}
	if role == "" {
		return fmt.Sprintf(`%q:{"id":%q,"message":null,"parent":%s,"children":[]}`, id, id, p)
	}
	return fmt.Sprintf(`%q:{"id":%q,"message":{"id":%q,"author":{"role":%q},"create_time":1700000001,`+
		`"content":{"content_type":"text","parts":[%q]},"status":"finished_successfully","metadata":{}},"parent":%s,"children":[]}`,
		id, id, id, role, text, p)
}

// A current_node that was dropped makes its nearest kept ancestor the
// active leaf; a node whose parent was dropped hangs from the next one up.
func TestImportChatGPTDroppedNodes(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	body := gptFile(`"n4"`,
		gptNode("root", "", "", ""),
		gptNode("n1", "root", "user", "hello"),
		gptNode("n2", "n1", "system", ""),
		gptNode("n3", "n2", "assistant", "hi"),
		gptNode("n4", "n3", "tool", "tool output"),
	)
	if r := g.do("POST", "/v1/import", body); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	items := b.nextImport(t).items
	if len(items) != 3 {
		t.Fatalf("items = %v", items)
	}
	if got, want := items[0].GetConversation().GetActiveLeafId(), uuid5("chatgpt/conv-1/n3"); got != want {
		t.Errorf("active leaf = %s, want %s (n3)", got, want)
	}
	if got, want := items[2].GetMessage().GetParentId(), uuid5("chatgpt/conv-1/n1"); got != want {
		t.Errorf("n3's parent = %s, want n1's id %s", got, want)
	}
}

// A ChatGPT id that cannot be a metadata value (a NUL, found by the OpenAPI
// fuzz test) still names the conversation, and is not kept as chatgpt_id.
func TestImportChatGPTIdNotAMetadataValue(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, id := range []string{`a\u0000b`, strings.Repeat("x", 513)} {
		body := `[{"id":"` + id + `","title":"t","mapping":{}}]`
		if r := g.do("POST", "/v1/import", body); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		c := b.nextImport(t).items[0].GetConversation()
		if _, ok := c.GetMetadata()["chatgpt_id"]; ok || c.GetId() == "" {
			t.Errorf("id %.20q: conversation %v", id, c)
		}
	}
}

// A malformed file answers 400 naming its first problem, and the Import
// call is cancelled, so the service stores nothing.
func TestImportMalformed(t *testing.T) {
	conv := `{"conversation":{"id":"c1","title":"t"},"messages":[{"id":"m1","role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name, body, want string
	}{
		{"not JSON", "hello", "line 1: not an export"},
		{"truncated line", conv + "\n" + `{"conversation":{"id":"c2"},"messages":[{"id":"m2","role":"us`, "line 2, messages[0]: malformed JSON: unexpected end of input"},
		{"truncated at the end of a message", conv + "\n" + `{"conversation":{"id":"c2"},"messages":[{"id":"m2","role":"user","content":"x"}`, "line 2, messages: malformed JSON: unexpected end of input"},
		{"wrong type", conv + "\n" + `{"conversation":{"id":"c2","title":5}}`, "line 2, conversation: invalid value for string field title"},
		{"unknown field in a message", `{"conversation":{"id":"c2"},"messages":[{"id":"m","rol":"user"}]}`, `line 1, messages[0]: unknown field "rol"`},
		{"messages before the conversation", `{"messages":[{"id":"m1","role":"user","content":"x"}],"conversation":{"id":"c1"}}`, `line 1: "messages" before "conversation"`},
		{"no conversation", `{}`, `line 1: no "conversation"`},
		{"unknown role", conv + "\n" + `{"conversation":{"id":"c2"},"messages":[{"id":"m2","role":"user","content":"a"},{"id":"m3","role":"robot","content":"b"}]}`, `line 2, messages[1]: role "robot" is not user, assistant or system`},
		{"bad UTF-8", conv + "\n\n" + `{"conversation":{"id":"c2","title":"caf` + "\xe9" + `"}}`, "line 3: invalid UTF-8"},
		{"UTF-8 cut at the end", conv + "\n" + `{"conversation":{"id":"c2"}} ` + "\xe6\x97", "line 2: invalid UTF-8"},
		{"two objects on a line", conv + " " + conv, "line 1: data after the JSON object"},
		{"array on a line", conv + "\n[1]", "line 2: expected a JSON object"},
		{"messages not an array", `{"conversation":{"id":"c2"},"messages":{}}`, "line 1, messages: expected an array"},
		{"an export that failed", conv + "\n" + `{"error":{"code":"INTERNAL","message":"internal error"}}`, "line 2: the export ended with an error"},
		{"unknown field in a line", `{"conversation":{"id":"c2"},"extra":1}`, `line 1: unknown field "extra"`},
		{"a message too large to send", `{"conversation":{"id":"c2"},"messages":[{"id":"m","role":"user","content":"` +
			strings.Repeat("x", 3<<20) + `"}]}`, "line 1, messages[0]: too large (3145"},
		{"a JSON value too large to read", `{"conversation":{"id":"c2"},"messages":[{"id":"m","role":"user","content":"` +
			strings.Repeat("x", 5<<20) + `"}]}`, "line 1, messages[0]: a JSON value over 4194304 bytes"},

		{"ChatGPT: truncated", gptFile(`null`, gptNode("a", "", "user", "x"))[:60], "$[0]: malformed JSON: unexpected end of input"},
		{"ChatGPT: not an array of objects", `[1]`, "$[0]: expected a conversation object"},
		{"ChatGPT: role of the wrong type", gptFile(`null`, `"a":{"message":{"author":{"role":5},"content":{"parts":["x"]}},"parent":null}`),
			`$[0].mapping["a"].message.author.role: expected a string, found a JSON number`},
		{"ChatGPT: unknown role", gptFile(`null`, gptNode("root", "", "", ""), gptNode("a", "root", "robot", "x")),
			`$[0].mapping["a"].message.author.role: "robot" is not user, assistant, system or tool`},
		{"ChatGPT: no role", gptFile(`null`, `"a":{"message":{"author":{},"content":{"parts":["x"]}},"parent":null}`),
			`$[0].mapping["a"].message.author.role: missing`},
		{"ChatGPT: unknown parent", gptFile(`null`, gptNode("a", "", "user", "x"), gptNode("b", "zz", "assistant", "y")),
			`$[0].mapping["b"].parent: "zz" is not a node of the mapping`},
		{"ChatGPT: cycle", gptFile(`null`, gptNode("a", "b", "user", "x"), gptNode("b", "a", "assistant", "y")),
			`$[0].mapping["a"].parent: the parents form a cycle`},
		{"ChatGPT: unknown current_node", gptFile(`"nope"`, gptNode("a", "", "user", "x")), `$[0].current_node: "nope" is not a node of the mapping`},
		{"ChatGPT: bad UTF-8", gptFile(`null`, gptNode("a", "", "user", "x")) + "", ""},
		{"ChatGPT: no id", `[{"title":"t","mapping":{}}]`, "$[0]: no id or conversation_id"},
		{"ChatGPT: parts not an array", gptFile(`null`, `"a":{"message":{"author":{"role":"user"},"content":{"parts":"x"}},"parent":null}`),
			`$[0].mapping["a"].message.content.parts: expected an array, found a JSON string`},
		{"ChatGPT: data after the array", gptFile(`null`) + "[]", "$: data after the JSON array"},
		{"ChatGPT: bad time", strings.Replace(gptFile(`null`), `"create_time":1700000000`, `"create_time":-5`, 1), "$[0].create_time: -5 is not a time"},
	} {
		if tc.want == "" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			g, b := newGateway(t, server.Options{})
			r := g.do("POST", "/v1/import", tc.body)
			e := envelopeOf(t, r, 400, "INVALID_ARGUMENT")
			if !strings.HasPrefix(e.Error.Message, tc.want) {
				t.Errorf("message = %q, want it to start with %q", e.Error.Message, tc.want)
			}
			if c := b.nextImport(t); !c.cancelled {
				t.Errorf("the Import call was not cancelled: %v", c.err)
			}
		})
	}

	// The second conversation of a ChatGPT file has bad UTF-8: its path.
	t.Run("ChatGPT: bad UTF-8", func(t *testing.T) {
		g, b := newGateway(t, server.Options{})
		good := gptFile(`null`, gptNode("a", "", "user", "x"))
		bad := strings.Replace(good, `"title":"t"`, "\"title\":\"caf\xe9\"", 1)
		r := g.do("POST", "/v1/import", good[:len(good)-1]+","+bad[1:])
		e := envelopeOf(t, r, 400, "INVALID_ARGUMENT")
		if e.Error.Message != "$[1]: invalid UTF-8" {
			t.Errorf("message = %q", e.Error.Message)
		}
		c := b.nextImport(t)
		if !c.cancelled {
			t.Errorf("not cancelled: %v", c.err)
		}
	})
}

// Problems only the service sees (a parent that is not an earlier message
// of the conversation) come back as its INVALID_ARGUMENT, quoting the
// item's source; the other statuses of the service map as usual.
func TestImportServiceErrors(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	seen := map[string]bool{}
	var mu sync.Mutex
	b.setImportCheck(func(it *chatv1.ImportItem) error {
		mu.Lock()
		defer mu.Unlock()
		if m := it.GetMessage(); m != nil {
			if p := m.GetParentId(); p != "" && !seen[p] {
				return status.Errorf(codes.InvalidArgument, "%s: parent_id %s is not an earlier message of the conversation", it.GetSource(), p)
			}
			seen[m.GetId()] = true
		}
		return nil
	})
	body := `{"conversation":{"id":"c1"},"messages":[{"id":"m1","role":"user","content":"a"}]}` + "\n" +
		`{"conversation":{"id":"c2"},"messages":[{"id":"m2","role":"user","content":"a"},{"id":"m4","parent_id":"m3","role":"user","content":"b"},{"id":"m3","role":"user","content":"b"}]}` + "\n"
	r := g.do("POST", "/v1/import", body)
	e := envelopeOf(t, r, 400, "INVALID_ARGUMENT")
	if !strings.HasPrefix(e.Error.Message, "line 2, messages[1]: parent_id m3") {
		t.Errorf("message = %q", e.Error.Message)
	}
	b.nextImport(t)

	b.setImportCheck(nil)
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{status.Error(codes.ResourceExhausted, "too many transfers"), 429, "RESOURCE_EXHAUSTED"},
		{status.Error(codes.Unauthenticated, "bad token"), 401, "UNAUTHENTICATED"},
		{status.Error(codes.Internal, "pq: secret detail"), 500, "INTERNAL"},
	} {
		b.setFail(tc.err)
		e := envelopeOf(t, g.do("POST", "/v1/import", body), tc.status, tc.code)
		if strings.Contains(e.Error.Message, "secret") {
			t.Errorf("leaked: %q", e.Error.Message)
		}
		b.nextImport(t)
	}
}

func TestImportEmptyBody(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, body := range []string{"", " \n\n", "\xef\xbb\xbf"} {
		r := g.do("POST", "/v1/import", body)
		if r.status != 200 || !jsonEqual(r.body, []byte(`{"imported":0,"skipped":0}`)) {
			t.Errorf("%q: %d %s", body, r.status, r.body)
		}
		if c := b.nextImport(t); c.cancelled || len(c.items) != 0 || !c.ended || c.err != nil {
			t.Errorf("%q: call %+v", body, c)
		}
	}
}

// bigExport is an export of about size bytes: conversations of messages
// with long contents.
func bigExport(size int) string {
	var sb strings.Builder
	for i := 0; sb.Len() < size; i++ {
		fmt.Fprintf(&sb, `{"conversation":{"id":"c%d"},"messages":[`, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"id":"c%d-m%d","role":"user","content":%q}`, i, j, strings.Repeat("x", 50000))
		}
		sb.WriteString("]}\n")
	}
	return sb.String()
}

// Import takes bodies up to 256 MiB; every other route keeps 1 MiB.
func TestImportBodyLimit(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	body := bigExport(2 << 20)
	r := g.do("POST", "/v1/import", body)
	if r.status != 200 {
		t.Fatalf("a 2 MiB import: %d %s", r.status, r.body)
	}
	if c := b.nextImport(t); len(c.items) < 40 {
		t.Errorf("%d items", len(c.items))
	}
	e := envelopeOf(t, g.do("POST", "/v1/conversations", body), 400, "INVALID_ARGUMENT")
	if e.Error.Message != "request body exceeds 1048576 bytes" {
		t.Errorf("message = %q", e.Error.Message)
	}
	envelopeOf(t, g.do("PUT", "/v1/import", "{}"), 405, "UNIMPLEMENTED")

	// Over 256 MiB by Content-Length: refused before any byte of it.
	u := strings.TrimPrefix(g.url, "http://")
	c, err := net.Dial("tcp", u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/import HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{", 256<<20+1)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	e = envelopeOf(t, response{status: resp.StatusCode, header: resp.Header, body: got}, 400, "INVALID_ARGUMENT")
	if e.Error.Message != "request body exceeds 268435456 bytes" {
		t.Errorf("message = %q", e.Error.Message)
	}

	// Past the limit while streaming (chunked): the call is cancelled.
	g, b = newGateway(t, server.Options{MaxImportBodyBytes: 1 << 20})
	r = g.send("POST", "/v1/import", io.MultiReader(strings.NewReader(body)))
	e = envelopeOf(t, r, 400, "INVALID_ARGUMENT")
	if e.Error.Message != "request body exceeds 1048576 bytes" {
		t.Errorf("chunked: message = %q", e.Error.Message)
	}
	if c := b.nextImport(t); !c.cancelled {
		t.Errorf("not cancelled: %v", c.err)
	}
}

// An import body gets a minimum rate, not a fixed deadline: one that keeps
// coming fast enough may take longer than the read timeout; one that
// trickles is cut off with 408.
func TestImportBodyRate(t *testing.T) {
	const timeout = 300 * time.Millisecond
	g, b, addr := newServedGateway(t, server.Options{ReadTimeout: timeout})
	body := bigExport(1 << 20)
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(body); i += 100 << 10 {
			if _, err := pw.Write([]byte(body[i:min(i+100<<10, len(body))])); err != nil {
				return
			}
			time.Sleep(60 * time.Millisecond) // 100 KiB per 60 ms, ~0.6 s in all.
		}
		pw.Close()
	}()
	if r := g.send("POST", "/v1/import", pr); r.status != 200 {
		t.Fatalf("a steady import body: %d %s", r.status, r.body)
	}
	b.nextImport(t)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	slow := `{"conversation":{"id":"c1"},"messages":[]}` + "\n"
	fmt.Fprintf(c, "POST /v1/import HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(slow))
	go trickle(c, slow, 100*time.Millisecond)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	e := envelopeOf(t, response{status: resp.StatusCode, header: resp.Header, body: got}, 408, "DEADLINE_EXCEEDED")
	if !strings.HasPrefix(e.Error.Message, "request body not received at 32768 bytes a second") {
		t.Errorf("message = %q", e.Error.Message)
	}
	if c := b.nextImport(t); !c.cancelled {
		t.Errorf("not cancelled: %v", c.err)
	}
}

// Parallel imports and exports, good and bad, each get their own answer.
func TestTransferParallel(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	sizes := []int{2, 50, 1}
	b.setExport(exportOf(sizes, 7))
	good := bigExport(100 << 10)
	sample, err := os.ReadFile(chatgptSample)
	if err != nil {
		t.Fatal(err)
	}
	const n = 48
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 4 {
			case 0:
				r := g.do("GET", "/v1/export", "")
				if r.status != 200 {
					t.Errorf("export: %d", r.status)
					return
				}
				checkExportLines(t, r.body, sizes)
			case 1:
				if r := g.do("POST", "/v1/import", good); r.status != 200 {
					t.Errorf("import: %d %s", r.status, r.body)
				}
			case 2:
				if r := g.do("POST", "/v1/import", string(sample)); r.status != 200 || !jsonEqual(r.body, []byte(`{"imported":3,"skipped":0}`)) {
					t.Errorf("ChatGPT import: %d %s", r.status, r.body)
				}
			case 3:
				bad := good[:len(good)/2] + "\xff" + good[len(good)/2:]
				r := g.do("POST", "/v1/import", bad)
				if e := envelopeOf(t, r, 400, "INVALID_ARGUMENT"); !strings.HasSuffix(e.Error.Message, ": invalid UTF-8") {
					t.Errorf("bad import: %q", e.Error.Message)
				}
			}
		}()
	}
	wg.Wait()
	cancelled := 0
	for range n / 4 * 3 {
		if b.nextImport(t).cancelled {
			cancelled++
		}
	}
	if cancelled != n/4 {
		t.Errorf("%d Import calls cancelled, want %d", cancelled, n/4)
	}
	// Still serving.
	if r := g.do("GET", "/v1/export", ""); r.status != 200 {
		t.Errorf("after: %d", r.status)
	}
}

// The client hanging up mid-export ends the call to the service.
func TestExportClientGone(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	ended := make(chan error, 1)
	b.setExport(func(s grpc.ServerStreamingServer[chatv1.ExportChunk]) error {
		c := &chatv1.ExportChunk{Conversation: testConversation("c0")}
		for {
			c.Messages = []*chatv1.Message{testMessage("c0", 1)}
			if err := s.Send(c); err != nil {
				ended <- err
				return err
			}
			c = &chatv1.ExportChunk{}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", g.url+"/v1/export", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the export call did not end after the client left")
	}
}

// The export takes no parameters: unknown ones are ignored as on other GET
// routes, malformed ones are 400 like everywhere.
func TestExportQuery(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	b.setExport(exportOf([]int{1}, 10))
	for q, want := range map[string]int{"?x=1": 200, "?page_size=5": 200, "?%zz": 400, "?a=%ff": 400} {
		r := g.do("GET", "/v1/export"+q, "")
		if r.status != want {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		} else if want == 200 {
			checkExportLines(t, r.body, []int{1})
		} else {
			envelopeOf(t, r, 400, "INVALID_ARGUMENT")
		}
	}
}
