package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/chat-backend/tests/apiclient/chat"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: apiclient <gateway base URL>")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "apiclient:", err)
		os.Exit(1)
	}
	fmt.Println("apiclient: register, create conversation, append message and list messages: ok")
}

func run(baseURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := chat.NewClientWithResponses(baseURL)
	if err != nil {
		return err
	}

	suffix := make([]byte, 5)
	_, _ = rand.Read(suffix)
	name := "gen_" + hex.EncodeToString(suffix)
	reg, err := c.AuthServiceRegisterWithResponse(ctx, chat.AuthServiceRegisterJSONRequestBody{
		Username: name, Email: name + "@example.com", Password: "Generated1client",
	})
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if reg.JSON201 == nil || reg.JSON201.Tokens == nil || reg.JSON201.Tokens.AccessToken == nil ||
		reg.JSON201.User == nil || deref(reg.JSON201.User.Username) != name {
		return fmt.Errorf("register: %d %s", reg.StatusCode(), reg.Body)
	}
	bearer := func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+*reg.JSON201.Tokens.AccessToken)
		return nil
	}

	title := "Generated client"
	conv, err := c.ConversationServiceCreateConversationWithResponse(ctx,
		chat.ConversationServiceCreateConversationJSONRequestBody{Title: &title}, bearer)
	if err != nil {
		return fmt.Errorf("create conversation: %w", err)
	}
	if conv.JSON201 == nil || conv.JSON201.Id == nil || deref(conv.JSON201.Title) != title ||
		conv.JSON201.LastMessageAt != nil {
		return fmt.Errorf("create conversation: %d %s", conv.StatusCode(), conv.Body)
	}
	id := *conv.JSON201.Id

	key := "generated-" + name
	msg, err := c.MessageServiceCreateMessageWithResponse(ctx, id,
		&chat.MessageServiceCreateMessageParams{IdempotencyKey: &key},
		chat.MessageServiceCreateMessageJSONRequestBody{Role: "user", Content: "Hello from a generated client"}, bearer)
	if err != nil {
		return fmt.Errorf("append message: %w", err)
	}
	if msg.JSON201 == nil || msg.JSON201.Id == nil || deref(msg.JSON201.ConversationId) != id {
		return fmt.Errorf("append message: %d %s", msg.StatusCode(), msg.Body)
	}

	list, err := c.MessageServiceListMessagesWithResponse(ctx, id, &chat.MessageServiceListMessagesParams{}, bearer)
	if err != nil {
		return fmt.Errorf("list messages: %w", err)
	}
	if list.JSON200 == nil || list.JSON200.Messages == nil || len(*list.JSON200.Messages) != 1 ||
		deref((*list.JSON200.Messages)[0].Id) != *msg.JSON201.Id ||
		deref((*list.JSON200.Messages)[0].Content) != "Hello from a generated client" {
		return fmt.Errorf("list messages: %d %s", list.StatusCode(), list.Body)
	}

	// An error answers the documented envelope, decoded by the client.
	missing, err := c.ConversationServiceGetConversationWithResponse(ctx, "01a00000-0000-7000-8000-000000000000", bearer)
	if err != nil {
		return fmt.Errorf("get a missing conversation: %w", err)
	}
	if missing.JSON404 == nil || missing.JSON404.Error == nil || deref(missing.JSON404.Error.Code) != "NOT_FOUND" {
		return fmt.Errorf("get a missing conversation: %d %s", missing.StatusCode(), missing.Body)
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
