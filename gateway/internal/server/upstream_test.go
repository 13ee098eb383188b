package server_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/server"
)

// pageOf returns a page of n messages of size bytes of content each.
func pageOf(n, size int) *chatv1.ListMessagesResponse {
	p := &chatv1.ListMessagesResponse{}
	for i := range n {
		p.Messages = append(p.Messages, &chatv1.Message{
			Id: fmt.Sprintf("m%d", i), Content: strings.Repeat("é", size/2),
		})
	}
	return p
}

// A page of 4 MiB of content and more gets through: the services end a page
// once it holds 4 MiB, after the message that crosses the line.
func TestLargePagesGetThrough(t *testing.T) {
	if server.MaxRecvMsgBytes < 16<<20 {
		t.Errorf("MaxRecvMsgBytes = %d, want at least 16 MiB", server.MaxRecvMsgBytes)
	}
	b := startBackend(t)
	c, err := grpc.NewClient(b.addr, server.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	h, err := server.New(context.Background(), server.Upstreams{Auth: c, Conversation: c, Message: c}, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	g := &gw{t: t, url: ts.URL, logs: &syncBuffer{}}

	const size = 200_000 // 100,000 two-byte characters, the largest message
	for _, total := range []int{5 << 20, 17 << 20} {
		b.setMessagePage(pageOf(total/size+1, size))
		r := g.do("GET", "/v1/conversations/c1/messages", "")
		if r.status != 200 || len(r.body) < total {
			t.Errorf("%d MiB page: status %d, %d bytes", total>>20, r.status, len(r.body))
		}
	}
}

// An answer over the limit is a 500 INTERNAL: the client cannot fix it, and
// a 429 would invite retries.
func TestOversizedAnswerIsInternal(t *testing.T) {
	// The harness dials with gRPC's default limit of 4 MiB.
	g, b := newGateway(t, server.Options{})
	b.setMessagePage(pageOf(30, 200_000)) // 6 MB
	r := g.do("GET", "/v1/conversations/c1/messages", "")
	e := envelopeOf(t, r, 500, "INTERNAL")
	if e.Error.Message != "internal error" || r.header.Get("Retry-After") != "" {
		t.Errorf("message %q, Retry-After %q", e.Error.Message, r.header.Get("Retry-After"))
	}
	if !strings.Contains(g.logs.String(), "larger than max") {
		t.Error("the log lacks the original error")
	}
}
