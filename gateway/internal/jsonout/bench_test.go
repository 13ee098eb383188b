package jsonout

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
)

// messagePage is a page as `make bench` lists it: 50 messages of about 200
// characters, with metadata on some.
func messagePage() *chatv1.ListMessagesResponse {
	page := &chatv1.ListMessagesResponse{NextPageToken: "eyJzZXEiOjUwfQ"}
	at := time.Date(2026, 12, 3, 15, 0, 0, 123456000, time.UTC)
	parent := "00000000-0000-0000-0000-000000000000"
	for i := range 50 {
		m := &chatv1.Message{
			Id:             "0193a5b0-7c1e-7d2a-9f3b-6c5d4e3f2a1b",
			ConversationId: "0193a5b0-7c1e-7d2a-9f3b-000000000001",
			Role:           "user",
			Content:        strings.Repeat("The quick brown fox jumps over the lazy dog. ", 5)[:200],
			Status:         "complete",
			Metadata:       map[string]string{},
			CreatedAt:      timestamppb.New(at.Add(time.Duration(i) * time.Second)),
			UpdatedAt:      timestamppb.New(at.Add(time.Duration(i) * time.Second)),
			ParentId:       proto.String(parent),
		}
		if i%5 == 0 {
			m.Metadata = map[string]string{"source": "bench", "lang": "en"}
		}
		page.Messages = append(page.Messages, m)
	}
	return page
}

func conversationPage() *chatv1.ListConversationsResponse {
	page := &chatv1.ListConversationsResponse{NextPageToken: "eyJzZXEiOjUwfQ"}
	at := time.Date(2026, 12, 3, 15, 0, 0, 123456000, time.UTC)
	for i := range 50 {
		c := &chatv1.Conversation{
			Id:        "0193a5b0-7c1e-7d2a-9f3b-6c5d4e3f2a1b",
			Title:     "Conversation about things",
			Metadata:  map[string]string{},
			CreatedAt: timestamppb.New(at),
			UpdatedAt: timestamppb.New(at.Add(time.Duration(i) * time.Minute)),
		}
		if i%2 == 0 {
			c.MessageCount = 12
			c.LastMessageAt = timestamppb.New(at.Add(time.Hour))
		}
		page.Conversations = append(page.Conversations, c)
	}
	return page
}

func BenchmarkMessagePage(b *testing.B) {
	benchmarkBoth(b, messagePage())
}

func BenchmarkConversationPage(b *testing.B) {
	benchmarkBoth(b, conversationPage())
}

// benchmarkBoth compares protojson with this package, and, from the bytes
// gRPC receives, decoding then writing with writing them undecoded.
func benchmarkBoth(b *testing.B, m proto.Message) {
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Options.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jsonout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	wire, err := proto.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	mt := m.ProtoReflect().Type()
	b.Run("decoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d := mt.New().Interface()
			if err := proto.Unmarshal(wire, d); err != nil {
				b.Fatal(err)
			}
			if _, err := Marshal(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("undecoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			u := mt.New().Interface()
			SetWire(u, wire)
			if _, err := Marshal(u); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestBenchPagesSame(t *testing.T) {
	checkSame(t, messagePage())
	checkSame(t, conversationPage())
}
