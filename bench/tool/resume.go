package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// resume measures how soon a client that reconnects to a reply in progress
// gets its text again, one reply at a time: it starts a chat reply that the
// fake provider holds after its first chunk (REST SSE), reads the reply's
// id and its first delta, then opens GET .../messages/{id}/stream with
// `Last-Event-ID: 0` and times from sending that request to the first
// replayed delta (the `event: delta` line). It closes both streams and
// cancels the reply (POST .../messages/{id}:cancel), so at most one reply
// of the user is in progress at a time. At the end it releases the
// provider and checks that no reply it started is still in progress.
func cmdResume(args []string) error {
	fs := flag.NewFlagSet("resume", flag.ExitOnError)
	flags := addChatFlags(fs, "resume")
	n := fs.Int("n", 200, "replies to resume")
	convCount := fs.Int("convs", 20, "conversations to spread the chats over")
	perRequest := fs.Duration("timeout", 30*time.Second, "give up on one round after this long")
	fs.Parse(args)
	base := flags.base
	token, providerRoot, err := flags.session()
	if err != nil {
		return err
	}
	convs, err := createConversations(*base, token, "bench resume", *convCount)
	if err != nil {
		return err
	}
	client := streamClient(4)
	messageURL := func(conv, id string) string {
		return *base + "/v1/conversations/" + conv + "/messages/" + id
	}

	// Replies whose cancel did not answer a reply that has ended: checked
	// again at the end.
	type reply struct{ conv, id string }
	var unfinished []reply

	// one round: the time to the first replayed delta.
	one := func(i int) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), *perRequest)
		defer cancel()
		conv := convs[(i+len(convs))%len(convs)]
		chat, err := chatRequest(ctx, client, *base, token, conv, fmt.Sprintf("resume %d %s", i, holdMarker))
		if err != nil {
			return 0, fmt.Errorf("chat: %v", err)
		}
		defer chat.Body.Close()
		var replyID string
		var failure error
		sawDelta := false
		err = sseEvents(chat.Body, func(event, data string) bool {
			switch event {
			case "reply":
				var m struct{ ID string }
				if err := json.Unmarshal([]byte(data), &m); err != nil || m.ID == "" {
					failure = fmt.Errorf("reply event without an id: %s", data)
					return false
				}
				replyID = m.ID
			case "delta":
				sawDelta = true
				return false
			case "done", "error":
				failure = fmt.Errorf("chat: %s event before the first delta: %s", event, data)
				return false
			}
			return true
		})
		if replyID != "" {
			// Whatever happens next, the reply ends: closing the streams
			// leaves it going on, held.
			defer func() {
				chat.Body.Close()
				var m struct{ Status string }
				err := call("POST", messageURL(conv, replyID)+":cancel", token, map[string]any{}, http.StatusOK, &m)
				if err != nil || m.Status == "in_progress" {
					unfinished = append(unfinished, reply{conv, replyID})
				}
			}()
		}
		switch {
		case failure != nil:
			return 0, failure
		case replyID == "":
			return 0, fmt.Errorf("chat: no reply event (%v)", err)
		case !sawDelta:
			return 0, fmt.Errorf("chat: no delta (%v)", err)
		}

		req, err := http.NewRequestWithContext(ctx, "GET", messageURL(conv, replyID)+"/stream", nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Last-Event-ID", "0")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, fmt.Errorf("resume: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return 0, fmt.Errorf("resume: status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		// The first event must be a delta from offset 0 with the text the
		// provider sent first.
		r := bufio.NewReaderSize(resp.Body, 4<<10)
		var first time.Duration
		event := ""
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return 0, fmt.Errorf("resume: no delta (%v)", err)
			}
			line = strings.TrimRight(line, "\r\n")
			switch {
			case strings.HasPrefix(line, "event:"):
				event = strings.TrimSpace(line[len("event:"):])
				if event != "delta" {
					return 0, fmt.Errorf("resume: first event %q, not a delta", event)
				}
				first = time.Since(t0)
			case strings.HasPrefix(line, "data:") && event == "delta":
				var d struct {
					Text   string `json:"text"`
					Offset *int   `json:"offset"`
				}
				data := strings.TrimSpace(line[len("data:"):])
				if err := json.Unmarshal([]byte(data), &d); err != nil || d.Offset == nil ||
					*d.Offset != 0 || !strings.HasPrefix(d.Text, "Hello") {
					return 0, fmt.Errorf("resume: the first delta is not the reply from offset 0: %s", data)
				}
				return first, nil
			}
		}
	}

	var lat []time.Duration
	var errs tally
	note := errs.note
	one(-1) // unrecorded: warms connections and caches
	for i := 0; i < *n; i++ {
		if d, err := one(i); err != nil {
			note(err)
		} else {
			lat = append(lat, d)
		}
	}

	// Nothing held stays held, and every reply has ended.
	if err := releaseProvider(providerRoot); err != nil {
		note(fmt.Errorf("release: %v", err))
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, rp := range unfinished {
		for {
			var m struct{ Status string }
			err := call("GET", messageURL(rp.conv, rp.id), token, nil, http.StatusOK, &m)
			if err == nil && m.Status != "in_progress" {
				break
			}
			if time.Now().After(deadline) {
				if err == nil {
					err = errors.New("still in progress at the end")
				}
				note(fmt.Errorf("reply %s: %v", rp.id, err))
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	sortDurations(lat)
	kv := map[string]string{
		"n":      strconv.Itoa(*n),
		"ok":     strconv.Itoa(len(lat)),
		"p50_ms": ms(percentile(lat, 50)),
		"p99_ms": ms(percentile(lat, 99)),
		"errors": strconv.Itoa(errs.count),
		// Cancels that did not end the reply at once (then released).
		"cancel_unfinished": strconv.Itoa(len(unfinished)),
	}
	if errs.first != nil {
		kv["error_detail"] = errs.first.Error()
	}
	fmt.Printf("resume: first replayed delta p50 %s ms, p99 %s ms, %d errors\n",
		kv["p50_ms"], kv["p99_ms"], errs.count)
	return record(*flags.resultsFile, *flags.prefix, kv)
}
