package server

import (
	"bufio"
	"bytes"
	"container/heap"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
)

// The conversations.json of a ChatGPT data export is a JSON array of
// conversations. Each is decoded whole (one at a time), its `mapping` tree
// becomes ours, and it is handed on parents first. The rules (docs/api.md
// "Export and import"):
//
//   - A node whose message is null (the root) or whose text is empty (a
//     hidden empty system message, an image without a caption, a tool call
//     with no text) is dropped, and so is a message of role "tool" (the
//     output of browsing, code or image tools); the children of a dropped
//     node hang from its nearest kept ancestor. Roles user, assistant and
//     system are kept; any other role is a malformed file.
//   - The text is the string parts of content.parts (and the text of an
//     audio transcription part) joined by "\n"; without parts, content.text.
//     Other parts (images, audio) are dropped.
//   - current_node becomes the active leaf: the node itself, or its nearest
//     kept ancestor if it was dropped.
//   - Ids are name-based UUIDs (version 5) under chatgptNamespace, from the
//     conversation's id and the node's, so the same file maps to the same
//     ids every time and a second import is skipped.
//   - Messages are sent parents first, siblings (and the whole tree) in
//     order of create_time, then of their place in the file.

// chatgptNamespace is the namespace of the ids made from ChatGPT's. Fixed
// forever: changing it would import every file a second time.
var chatgptNamespace = [16]byte{0x68, 0x0d, 0xed, 0xd9, 0x50, 0x7a, 0x4d, 0xf5, 0x90, 0x70, 0x09, 0xaa, 0x1d, 0x23, 0x40, 0x3c}

// nameUUID is the version 5 UUID of name under chatgptNamespace (RFC 9562).
func nameUUID(name string) string {
	h := sha1.New()
	h.Write(chatgptNamespace[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}

// pathError is a problem at a JSON path of the file.
func pathError(path, format string, args ...any) error {
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
}

func parseChatGPT(br *bufio.Reader, emit func(*chatv1.ImportItem) error) error {
	cr := &capReader{r: br, max: maxChatGPTConversationBytes}
	dec := json.NewDecoder(cr)
	cr.dec = dec
	if _, err := dec.Token(); err != nil { // '['
		return pathError("$", "%s", jsonProblem(err, maxChatGPTConversationBytes))
	}
	for i := 0; dec.More(); i++ {
		path := fmt.Sprintf("$[%d]", i)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return pathError(path, "%s", jsonProblem(err, maxChatGPTConversationBytes))
		}
		if !utf8.Valid(raw) {
			return pathError(path, "invalid UTF-8")
		}
		items, err := convertChatGPT(raw, path)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := emit(it); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // ']'
		return pathError("$", "%s", jsonProblem(err, maxChatGPTConversationBytes))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return pathError("$", "%s", jsonProblem(err, maxChatGPTConversationBytes))
		}
		return pathError("$", "data after the JSON array")
	}
	return nil
}

// capReader fails a read once the decoder dec holds more than max bytes
// that it has not consumed: one value too large to decode.
type capReader struct {
	r    io.Reader
	dec  *json.Decoder
	max  int64
	read int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.dec != nil && c.read-c.dec.InputOffset() > c.max {
		return 0, errValueTooBig
	}
	n, err := c.r.Read(p)
	c.read += int64(n)
	return n, err
}

type gptConversation struct {
	Title          *string         `json:"title"`
	CreateTime     *float64        `json:"create_time"`
	UpdateTime     *float64        `json:"update_time"`
	Mapping        json.RawMessage `json:"mapping"`
	CurrentNode    *string         `json:"current_node"`
	ID             *string         `json:"id"`
	ConversationID *string         `json:"conversation_id"`
	IsArchived     *bool           `json:"is_archived"`
}

type gptNode struct {
	Message  *gptMessage `json:"message"`
	Parent   *string     `json:"parent"`
	Children []string    `json:"children"`
}

type gptMessage struct {
	Author *struct {
		Role *string `json:"role"`
	} `json:"author"`
	CreateTime *float64 `json:"create_time"`
	UpdateTime *float64 `json:"update_time"`
	Content    *struct {
		Parts []json.RawMessage `json:"parts"`
		Text  *string           `json:"text"`
	} `json:"content"`
	Status   *string                    `json:"status"`
	Metadata map[string]json.RawMessage `json:"metadata"`
}

// gptEntry is one node of a conversation's mapping.
type gptEntry struct {
	key    string
	index  int // place in the file
	node   gptNode
	path   string
	kept   bool
	text   string
	role   string
	up     *gptEntry // nearest kept ancestor or self; nil: none
	upDone bool
	parent *gptEntry // nearest kept ancestor (kept entries)
	kids   []*gptEntry
	time   time.Time // created_at (kept entries)
}

func convertChatGPT(raw json.RawMessage, path string) ([]*chatv1.ImportItem, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, pathError(path, "expected a conversation object")
	}
	var c gptConversation
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, typeError(path, err)
	}
	id := ""
	switch {
	case c.ConversationID != nil && *c.ConversationID != "":
		id = *c.ConversationID
	case c.ID != nil && *c.ID != "":
		id = *c.ID
	default:
		return nil, pathError(path, "no id or conversation_id")
	}
	entries, byKey, err := readMapping(c.Mapping, path)
	if err != nil {
		return nil, err
	}

	// Which nodes are kept, and the nearest kept ancestor of each.
	for _, e := range entries {
		if err := e.keep(); err != nil {
			return nil, err
		}
	}
	if err := checkParents(entries, byKey); err != nil {
		return nil, err
	}
	for _, e := range entries {
		e.nearestKept(byKey)
	}

	conv := &chatv1.Conversation{
		Id:       nameUUID("chatgpt/" + id),
		Metadata: map[string]string{"imported_from": "chatgpt"},
	}
	// Only an id that is a valid metadata value (common/metadata.cc: at
	// most 512 characters, no NUL) is kept; the conversation's own id is
	// derived from any.
	if utf8.RuneCountInString(id) <= 512 && !strings.ContainsRune(id, 0) {
		conv.Metadata["chatgpt_id"] = id
	}
	if c.Title != nil {
		conv.Title = truncateRunes(strings.TrimSpace(*c.Title), 255)
	}
	if c.IsArchived != nil {
		conv.Archived = *c.IsArchived
	}
	created, err := gptTime(c.CreateTime, path+".create_time")
	if err != nil {
		return nil, err
	}
	updated, err := gptTime(c.UpdateTime, path+".update_time")
	if err != nil {
		return nil, err
	}

	// Times, tree and order of the kept messages.
	var roots entryHeap
	var first, last time.Time
	for _, e := range entries {
		if !e.kept {
			continue
		}
		if e.node.Parent != nil && *e.node.Parent != "" {
			e.parent = byKey[*e.node.Parent].up
		}
		if e.parent != nil {
			e.parent.kids = append(e.parent.kids, e)
		} else {
			roots = append(roots, e)
		}
		t, err := gptTime(e.node.Message.CreateTime, e.path+".message.create_time")
		if err != nil {
			return nil, err
		}
		e.time = t
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	// Times the file does not have stay unset (the service picks them).
	if created.IsZero() {
		created = first
	}
	if updated.IsZero() {
		updated = last
	}
	if updated.Before(created) {
		updated = created
	}
	conv.CreatedAt, conv.UpdatedAt = timestamp(created), timestamp(updated)

	if c.CurrentNode != nil && *c.CurrentNode != "" {
		cur, ok := byKey[*c.CurrentNode]
		if !ok {
			return nil, pathError(path+".current_node", "%s is not a node of the mapping", strconv.Quote(*c.CurrentNode))
		}
		if cur.up != nil {
			conv.ActiveLeafId = nameUUID("chatgpt/" + id + "/" + cur.up.key)
		}
	}

	items := []*chatv1.ImportItem{{Source: path, Item: &chatv1.ImportItem_Conversation{Conversation: conv}}}
	// Parents first; among the nodes ready to go, the oldest first.
	heap.Init(&roots)
	for roots.Len() > 0 {
		e := heap.Pop(&roots).(*gptEntry)
		if e.time.IsZero() {
			// No create_time: its parent's, else the conversation's.
			e.time = created
			if e.parent != nil {
				e.time = e.parent.time
			}
		}
		m := &chatv1.Message{
			Id:        nameUUID("chatgpt/" + id + "/" + e.key),
			Role:      e.role,
			Content:   e.text,
			Status:    gptStatus(e.node.Message.Status),
			Model:     gptModel(e.node.Message.Metadata),
			CreatedAt: timestamp(e.time),
			UpdatedAt: timestamp(e.time),
		}
		parent := ""
		if e.parent != nil {
			parent = nameUUID("chatgpt/" + id + "/" + e.parent.key)
		}
		m.ParentId = &parent
		if u, err := gptTime(e.node.Message.UpdateTime, e.path+".message.update_time"); err != nil {
			return nil, err
		} else if u.After(e.time) {
			m.UpdatedAt = timestamppb.New(u)
		}
		items = append(items, &chatv1.ImportItem{Source: e.path + ".message", Item: &chatv1.ImportItem_Message{Message: m}})
		for _, k := range e.kids {
			heap.Push(&roots, k)
		}
	}
	return items, nil
}

// readMapping reads the mapping object in file order.
func readMapping(raw json.RawMessage, path string) ([]*gptEntry, map[string]*gptEntry, error) {
	path += ".mapping"
	byKey := map[string]*gptEntry{}
	if len(raw) == 0 || string(raw) == "null" {
		return nil, byKey, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, pathError(path, "expected an object of nodes")
	}
	var entries []*gptEntry
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, pathError(path, "%s", jsonProblem(err, maxChatGPTConversationBytes))
		}
		key := tok.(string)
		e := &gptEntry{key: key, index: len(entries), path: path + "[" + strconv.Quote(key) + "]"}
		if _, dup := byKey[key]; dup {
			return nil, nil, pathError(e.path, "given twice")
		}
		if err := dec.Decode(&e.node); err != nil {
			return nil, nil, typeError(e.path, err)
		}
		byKey[key] = e
		entries = append(entries, e)
	}
	return entries, byKey, nil
}

// keep decides whether the node becomes a message, and its role and text.
func (e *gptEntry) keep() error {
	m := e.node.Message
	if m == nil {
		return nil
	}
	if m.Author == nil || m.Author.Role == nil {
		return pathError(e.path+".message.author.role", "missing")
	}
	switch role := *m.Author.Role; role {
	case "user", "assistant", "system":
		e.role = role
	case "tool":
		return nil
	default:
		return pathError(e.path+".message.author.role", "%s is not user, assistant, system or tool", strconv.Quote(role))
	}
	e.text = gptText(m)
	e.kept = e.text != ""
	return nil
}

// checkParents checks that every parent is a node of the mapping and that
// following parents always ends at a root (no cycle).
func checkParents(entries []*gptEntry, byKey map[string]*gptEntry) error {
	const (
		walking = 1
		rooted  = 2
	)
	state := make(map[*gptEntry]int, len(entries))
	for _, e := range entries {
		var chain []*gptEntry
		for cur := e; cur != nil && state[cur] != rooted; {
			if state[cur] == walking {
				return pathError(cur.path+".parent", "the parents form a cycle")
			}
			state[cur] = walking
			chain = append(chain, cur)
			if cur.node.Parent == nil || *cur.node.Parent == "" {
				break
			}
			p, ok := byKey[*cur.node.Parent]
			if !ok {
				return pathError(cur.path+".parent", "%s is not a node of the mapping", strconv.Quote(*cur.node.Parent))
			}
			cur = p
		}
		for _, c := range chain {
			state[c] = rooted
		}
	}
	return nil
}

// nearestKept sets e.up, the nearest kept node among e and its ancestors
// (nil when there is none), walking up without recursion (checkParents
// has ruled out cycles).
func (e *gptEntry) nearestKept(byKey map[string]*gptEntry) *gptEntry {
	var chain []*gptEntry
	var found *gptEntry
	for cur := e; cur != nil; {
		if cur.upDone {
			found = cur.up
			break
		}
		chain = append(chain, cur)
		if cur.kept {
			found = cur
			break
		}
		if cur.node.Parent == nil || *cur.node.Parent == "" {
			break
		}
		cur = byKey[*cur.node.Parent]
	}
	for _, c := range chain {
		c.up, c.upDone = found, true
	}
	return found
}

// gptText is the text of a message: the string parts (and audio
// transcriptions) of content.parts joined by "\n", else content.text.
func gptText(m *gptMessage) string {
	if m.Content == nil {
		return ""
	}
	var parts []string
	for _, p := range m.Content.Parts {
		switch {
		case len(p) > 0 && p[0] == '"':
			var s string
			if json.Unmarshal(p, &s) == nil && s != "" {
				parts = append(parts, s)
			}
		case len(p) > 0 && p[0] == '{':
			var obj struct {
				ContentType string `json:"content_type"`
				Text        string `json:"text"`
			}
			if json.Unmarshal(p, &obj) == nil && obj.ContentType == "audio_transcription" && obj.Text != "" {
				parts = append(parts, obj.Text)
			}
		}
	}
	if len(parts) > 0 {
		return strings.Join(parts, "\n")
	}
	if len(m.Content.Parts) == 0 && m.Content.Text != nil {
		return *m.Content.Text
	}
	return ""
}

// gptStatus maps ChatGPT's message status onto ours: a reply cut short is
// incomplete, anything else complete.
func gptStatus(s *string) string {
	if s == nil {
		return "complete"
	}
	switch *s {
	case "finished_partial_completion", "in_progress", "interrupted":
		return "incomplete"
	}
	return "complete"
}

// gptModel is metadata.model_slug, when it is a string.
func gptModel(md map[string]json.RawMessage) string {
	var slug string
	if raw, ok := md["model_slug"]; ok && json.Unmarshal(raw, &slug) == nil {
		return slug
	}
	return ""
}

// gptTime converts seconds since the epoch (fractions kept to the
// microsecond, PostgreSQL's precision); null or absent is the zero time.
func gptTime(secs *float64, path string) (time.Time, error) {
	if secs == nil {
		return time.Time{}, nil
	}
	// Year 1970 to 9999: what a timestamp of the export can be.
	if *secs < 0 || *secs > 253402300799 || math.IsNaN(*secs) {
		return time.Time{}, pathError(path, "%v is not a time (seconds since 1970)", *secs)
	}
	return time.UnixMicro(int64(math.Round(*secs * 1e6))).UTC(), nil
}

// timestamp is t, or nil for the zero time (unknown).
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// typeError words an error of json.Unmarshal at path.
func typeError(path string, err error) error {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		p := path
		if typ.Field != "" {
			p += "." + typ.Field
		}
		return pathError(p, "expected %s, found a JSON %s", jsonKind(typ.Type.Kind().String()), typ.Value)
	}
	return pathError(path, "%s", jsonProblem(err, maxChatGPTConversationBytes))
}

// jsonKind names a Go kind the way a JSON file says it.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "float64", "int", "int64":
		return "a number"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	}
	return kind
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}

// entryHeap orders the nodes ready to be sent: oldest first, then in file
// order. A node without create_time sorts as its parent.
type entryHeap []*gptEntry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	ti, tj := h[i].sortTime(), h[j].sortTime()
	if !ti.Equal(tj) {
		return ti.Before(tj)
	}
	return h[i].index < h[j].index
}
func (h entryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)   { *h = append(*h, x.(*gptEntry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func (e *gptEntry) sortTime() time.Time {
	for c := e; c != nil; c = c.parent {
		if !c.time.IsZero() {
			return c.time
		}
	}
	return time.Time{}
}
