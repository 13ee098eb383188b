package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/server"
)

// conversationPage is the page the backend answers for conversation c with n
// messages: every message names both, and the sizes differ from one
// conversation to the next, so that a pooled buffer is reused for a
// shorter or a longer answer than its last one.
func conversationPage(c string, n int) *chatv1.ListMessagesResponse {
	page := &chatv1.ListMessagesResponse{NextPageToken: "after-" + c}
	for i := range n {
		page.Messages = append(page.Messages, &chatv1.Message{
			Id:             fmt.Sprintf("%s-m%d", c, i),
			ConversationId: c,
			Role:           "user",
			Content:        strings.Repeat(fmt.Sprintf("%s message %d. ", c, i), 1+len(c)%7),
			Status:         "complete",
			CreatedAt:      timestamppb.New(timestamppb.Now().AsTime().Truncate(1e9)),
		})
	}
	return page
}

// The listings' answers and their JSON live in pooled buffers that their
// request releases when it is done (reqState.keep). Many listings at once,
// of different sizes, over real connections: each answer must be its own
// page, whole, whatever the buffers were used for before.
func TestListingAnswersInPooledBuffersStayTheirOwn(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	var mu sync.Mutex
	pages := map[string]*chatv1.ListMessagesResponse{}
	b.mu.Lock()
	b.pageFor = func(r *chatv1.ListMessagesRequest) *chatv1.ListMessagesResponse {
		mu.Lock()
		defer mu.Unlock()
		return pages[r.GetConversationId()]
	}
	b.mu.Unlock()
	const conversations = 12
	for c := range conversations {
		id := fmt.Sprintf("c%d", c)
		pages[id] = conversationPage(id, 1+c*9) // 1 to 100 messages
	}

	const workers, perWorker = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				id := fmt.Sprintf("c%d", (w*7+i*5)%conversations)
				req, _ := http.NewRequest(http.MethodGet, g.url+"/v1/conversations/"+id+"/messages", nil)
				req.Header.Set("Authorization", "Bearer x")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("%s: %d %v %.200s", id, resp.StatusCode, err, body)
					continue
				}
				var got chatv1.ListMessagesResponse
				if err := protojson.Unmarshal(body, &got); err != nil {
					errs <- fmt.Errorf("%s: %v in %.200s", id, err, body)
					continue
				}
				mu.Lock()
				want := pages[id]
				mu.Unlock()
				if !proto.Equal(&got, want) {
					errs <- fmt.Errorf("%s: the answer is not its page: %.300s", id, body)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	failures := 0
	for err := range errs {
		if failures++; failures <= 5 {
			t.Error(err)
		}
	}
	if failures > 5 {
		t.Errorf("... and %d more", failures-5)
	}
}
