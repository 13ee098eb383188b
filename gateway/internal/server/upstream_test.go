package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/jsonout"
	"github.com/chat-backend/gateway/internal/server"
)

// pageOf returns a page of n messages of size bytes of content each, and
// with metadata bytes of metadata each (at most 16 keys of 64 four-byte
// characters and values of 512).
func pageOf(n, size int, metadata bool) *chatv1.ListMessagesResponse {
	p := &chatv1.ListMessagesResponse{}
	for i := range n {
		m := &chatv1.Message{Id: fmt.Sprintf("m%d", i), Content: strings.Repeat("é", size/2)}
		if metadata {
			m.Metadata = map[string]string{}
			for k := range 16 {
				m.Metadata[fmt.Sprintf("%s%02d", strings.Repeat("😀", 62), k)] = strings.Repeat("😀", 512)
			}
		}
		p.Messages = append(p.Messages, m)
	}
	return p
}

// The largest page the message service answers gets through: 4 MiB of
// content, and 200 messages with the largest metadata (about 11.6 MB).
func TestLargestPageGetsThrough(t *testing.T) {
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

	for _, tc := range []struct {
		name string
		page *chatv1.ListMessagesResponse
	}{
		{"4 MiB of content in the largest messages", pageOf(21, 200_000, false)},
		{"4 MiB of content and the largest metadata", pageOf(200, (4<<20)/200, true)},
	} {
		b.setMessagePage(tc.page)
		r := g.do("GET", "/v1/conversations/c1/messages", "")
		if r.status != 200 || len(r.body) < 4<<20 {
			t.Errorf("%s: status %d, %d bytes: %.300s", tc.name, r.status, len(r.body), r.body)
		}
	}
}

// An answer over the limit is a 500 INTERNAL: the client cannot fix it, and
// a 429 would invite retries.
func TestOversizedAnswerIsInternal(t *testing.T) {
	// The harness dials with gRPC's default limit of 4 MiB.
	g, b := newGateway(t, server.Options{})
	b.setMessagePage(pageOf(30, 200_000, false)) // 6 MB
	r := g.do("GET", "/v1/conversations/c1/messages", "")
	e := envelopeOf(t, r, 500, "INTERNAL")
	if e.Error.Message != "internal error" || r.header.Get("Retry-After") != "" {
		t.Errorf("message %q, Retry-After %q", e.Error.Message, r.header.Get("Retry-After"))
	}
	if !strings.Contains(g.logs.String(), "larger than max") {
		t.Error("the log lacks the original error")
	}
}

// A page is written from the bytes the service sent (undecoded.go): the
// answer is protojson's of the page, field for field.
func TestPageIsWrittenAsSent(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	at := timestamppb.New(time.Date(2026, 12, 4, 13, 0, 0, 5_000, time.UTC))
	page := &chatv1.ListMessagesResponse{NextPageToken: "next"}
	for i, content := range []string{"", "plain", "quote \" back\\slash \n\t\x01 é 😀 \u2028", strings.Repeat("long ", 1000)} {
		page.Messages = append(page.Messages, &chatv1.Message{
			Id: fmt.Sprintf("m%d", i), Content: content, Status: "complete",
			Metadata:  map[string]string{"z": "last", "a": content, "é": ""},
			CreatedAt: at, ParentId: proto.String("p"), SiblingCount: int32(i),
		})
	}
	page.Messages = append(page.Messages, &chatv1.Message{}) // every field unset
	b.setMessagePage(page)
	want, err := jsonout.Options.Marshal(page)
	if err != nil {
		t.Fatal(err)
	}
	r := g.do("GET", "/v1/conversations/c1/messages", "")
	var got, wantCompact bytes.Buffer
	if err := json.Compact(&got, []byte(r.body)); err != nil || r.status != 200 {
		t.Fatalf("status %d, %v: %s", r.status, err, r.body)
	}
	_ = json.Compact(&wantCompact, want)
	if got.String() != wantCompact.String() {
		t.Errorf("got  %s\nwant %s", got.String(), wantCompact.String())
	}
	// Its size up front (WithWriteContentLength), not in chunks.
	if cl := r.header.Get("Content-Length"); cl != fmt.Sprint(len(r.body)) {
		t.Errorf("Content-Length %q for %d bytes", cl, len(r.body))
	}
}
