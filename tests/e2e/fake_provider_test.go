package e2e

// A fake OpenAI-compatible provider: a real HTTP server on loopback that
// speaks the streaming Chat Completions API. What it does for a request is
// chosen by a scenario word in the last user message ("scenario:slow"), so
// tests can run side by side; it records every request it gets.
//
// "scenario:drip" paces a long reply: "chunks:N" pieces (default 20), one
// every "every:D" (a Go duration, default 50ms), piece i being dripChunk(i),
// so that the whole reply is dripText(N); it stops early when the service
// hangs up. "scenario:echo" repeats the last message after "You said: ", in
// two pieces (the browser tests' content, such as an XSS attempt).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

const providerKey = "sk-e2e-provider-secret-4f1c"

type providerRequest struct {
	Authorization string
	Model         string
	Messages      []struct{ Role, Content string }
	cancelled     chan struct{} // closed when the service hung up
}

type FakeProvider struct {
	*httptest.Server
	mu       sync.Mutex
	requests map[string]*providerRequest // by the marker in the last message
	gates    map[string]chan struct{}    // "slow" scenarios wait on these
}

func NewFakeProvider() *FakeProvider {
	p := &FakeProvider{requests: map[string]*providerRequest{}, gates: map[string]chan struct{}{}}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	return p
}

// Gate returns the channel a "slow" request with this marker waits on.
func (p *FakeProvider) Gate(marker string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gates[marker] == nil {
		p.gates[marker] = make(chan struct{})
	}
	return p.gates[marker]
}

// Request returns what the service sent for the marker, waiting up to 10 s.
func (p *FakeProvider) Request(marker string) *providerRequest {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		r := p.requests[marker]
		p.mu.Unlock()
		if r != nil {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// dripChunk is piece i of a "drip" reply: multi-byte characters (2 and 4
// bytes, the emoji 2 UTF-16 units) so that offsets in code points differ
// from offsets in bytes or UTF-16 units.
func dripChunk(i int) string { return fmt.Sprintf("[%d é😀]", i) }

// dripText is the whole text of a "drip" reply of n pieces.
func dripText(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(dripChunk(i))
	}
	return b.String()
}

// dripSettings reads "chunks:N" and "every:D" from a message.
func dripSettings(content string) (chunks int, every time.Duration) {
	chunks, every = 20, 50*time.Millisecond
	for _, word := range strings.Fields(content) {
		if v, ok := strings.CutPrefix(word, "chunks:"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				chunks = n
			}
		}
		if v, ok := strings.CutPrefix(word, "every:"); ok {
			if d, err := time.ParseDuration(v); err == nil {
				every = d
			}
		}
	}
	return chunks, every
}

// chunk is one streamed piece, reporting the model that was asked.
func chunk(model, text string) string {
	b, _ := json.Marshal(map[string]any{
		"id": "chatcmpl-e2e", "object": "chat.completion.chunk", "model": model,
		"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": text}}},
	})
	return "data: " + string(b) + "\n\n"
}

func finalChunks(model string) string {
	return `data: {"id":"chatcmpl-e2e","model":"` + model + `","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

data: {"id":"chatcmpl-e2e","model":"` + model + `","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14}}

data: [DONE]

`
}

func (p *FakeProvider) serve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Model    string
		Stream   bool
		Messages []struct{ Role, Content string }
	}
	if r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&body) != nil || !body.Stream {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	last := ""
	if n := len(body.Messages); n > 0 {
		last = body.Messages[n-1].Content
	}
	marker, scenario := last, "ok"
	for _, word := range strings.Fields(last) {
		if strings.HasPrefix(word, "scenario:") {
			scenario = strings.TrimPrefix(word, "scenario:")
		}
	}
	req := &providerRequest{Authorization: r.Header.Get("Authorization"), Model: body.Model,
		Messages: body.Messages, cancelled: make(chan struct{})}
	p.mu.Lock()
	p.requests[marker] = req
	p.mu.Unlock()
	go func() { <-r.Context().Done(); close(req.cancelled) }()

	if scenario == "http-error" {
		// Some servers echo the credentials they got: the service must not
		// pass them on to its log or its answer.
		http.Error(w, `{"error":{"message":"model overloaded for `+req.Authorization+`"}}`,
			http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	flusher := w.(http.Flusher)
	send := func(s string) {
		fmt.Fprint(w, s)
		flusher.Flush()
	}
	model := body.Model
	switch scenario {
	case "ok":
		send(chunk(model, "Hello"))
		send(chunk(model, ", "))
		send(chunk(model, "world"))
		send(finalChunks(model))
	case "slow": // the first piece, then nothing until the test opens the gate
		send(chunk(model, "First"))
		select {
		case <-p.Gate(marker):
		case <-r.Context().Done():
			return
		}
		send(chunk(model, " and last"))
		send(finalChunks(model))
	case "echo":
		text := []rune("You said: " + last)
		send(chunk(model, string(text[:len(text)/2])))
		send(chunk(model, string(text[len(text)/2:])))
		send(finalChunks(model))
	case "malformed":
		send(chunk(model, "Partial"))
		send("data: {this is not json\n\n")
	case "stall": // one piece, then silence until the service gives up
		send(chunk(model, "Before the stall"))
		<-r.Context().Done()
	case "drip": // paced pieces (dripSettings) unless the service hangs up
		chunks, every := dripSettings(last)
		for i := 0; i < chunks; i++ {
			if i > 0 {
				select {
				case <-r.Context().Done():
					return
				case <-time.After(every):
				}
			}
			send(chunk(model, dripChunk(i)))
		}
		send(finalChunks(model))
	}
}
