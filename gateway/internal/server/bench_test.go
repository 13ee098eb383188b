package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/server"
)

// BenchmarkListMessagesPage is the gateway's list path on its own: GET
// .../messages?page_size=50 through the whole handler (middleware, routing,
// the gRPC call to the in-test backend over loopback, its decoding, the
// JSON answer), a page of 50 messages of 200 characters as `make bench`
// lists. The backend's own work (encoding the page) is in the figures too.
func BenchmarkListMessagesPage(b *testing.B) {
	backend := startBackend(b)
	page := &chatv1.ListMessagesResponse{NextPageToken: "eyJzZXEiOjUwfQ"}
	at := time.Date(2026, 12, 3, 15, 0, 0, 123456000, time.UTC)
	for i := range 50 {
		page.Messages = append(page.Messages, &chatv1.Message{
			Id:             "0193a5b0-7c1e-7d2a-9f3b-6c5d4e3f2a1b",
			ConversationId: "0193a5b0-7c1e-7d2a-9f3b-000000000001",
			Role:           "user",
			Content:        strings.Repeat("The quick brown fox jumps over the lazy dog. ", 5)[:200],
			Status:         "complete",
			CreatedAt:      timestamppb.New(at.Add(time.Duration(i) * time.Second)),
			UpdatedAt:      timestamppb.New(at.Add(time.Duration(i) * time.Second)),
			ParentId:       proto.String("0193a5b0-7c1e-7d2a-9f3b-6c5d4e3f2a1a"),
		})
	}
	backend.setMessagePage(page)
	h, err := server.New(context.Background(), server.Upstreams{
		Auth:         dial(b, backend.addr),
		Conversation: dial(b, backend.addr),
		Message:      dial(b, backend.addr),
	}, server.Options{})
	if err != nil {
		b.Fatal(err)
	}
	const path = "/v1/conversations/0193a5b0-7c1e-7d2a-9f3b-000000000001/messages?page_size=50"
	b.ReportAllocs()
	for b.Loop() {
		backend.mu.Lock()
		backend.calls = backend.calls[:0] // the fake records every call
		backend.mu.Unlock()
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("Authorization", "Bearer x")
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || w.Body.Len() < 50*200 {
			b.Fatalf("%d %s", w.Code, w.Body.String())
		}
	}
}
