package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

func cmdPorts(args []string) error {
	n := 1
	if len(args) > 0 {
		if _, err := fmt.Sscan(args[0], &n); err != nil {
			return err
		}
	}
	// Hold them all open until every one is chosen, so they differ.
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		listeners = append(listeners, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// conversationWorkers is how many conversations createConversations makes
// at once.
const conversationWorkers = 32

// httpClient sends the ordinary requests; it keeps a connection for each
// worker of createConversations.
var httpClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
	DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	MaxIdleConns:        conversationWorkers,
	MaxIdleConnsPerHost: conversationWorkers,
	IdleConnTimeout:     30 * time.Second,
}}

// call sends a JSON request and decodes a JSON answer; any status but want
// is an error that carries the body.
func call(method, url, token string, body any, want int, out any) error {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, reader)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want,
			strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

type account struct {
	UserID string
	Token  string
}

func register(base string) (account, error) {
	suffix := make([]byte, 5)
	rand.Read(suffix)
	name := "bench_" + hex.EncodeToString(suffix)
	var answer struct {
		User   struct{ ID string } `json:"user"`
		Tokens struct {
			AccessToken string `json:"access_token"`
		} `json:"tokens"`
	}
	err := call("POST", base+"/v1/auth/register", "", map[string]string{
		"username": name, "email": name + "@example.com", "password": "Bench-Passw0rd",
	}, http.StatusCreated, &answer)
	if err != nil {
		return account{}, err
	}
	if answer.User.ID == "" || answer.Tokens.AccessToken == "" {
		return account{}, fmt.Errorf("register answered no user id or access token")
	}
	return account{UserID: answer.User.ID, Token: answer.Tokens.AccessToken}, nil
}

// createConversations makes n conversations with conversationWorkers
// requests in flight.
func createConversations(base, token, titlePrefix string, n int) ([]string, error) {
	ids := make([]string, n)
	errs := make(chan error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < conversationWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var c struct{ ID string }
				if err := call("POST", base+"/v1/conversations", token,
					map[string]string{"title": fmt.Sprintf("%s %d", titlePrefix, i)},
					http.StatusCreated, &c); err != nil {
					errs <- err
					continue
				}
				ids[i] = c.ID
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return ids, nil
}

// setup: one user, -convs conversations for the append load, one for the
// big listing and one small one for the branch switches. Files in -out:
// token, user_id, convs (one id a line), big_conv, small_conv.
func cmdSetup(args []string) error {
	fs := flag.NewFlagSet("setup", flag.ExitOnError)
	base := fs.String("base", "", "gateway base URL")
	n := fs.Int("convs", 256, "conversations for the append load")
	out := fs.String("out", "", "directory for the files")
	fs.Parse(args)
	acc, err := register(*base)
	if err != nil {
		return err
	}
	ids, err := createConversations(*base, acc.Token, "bench append", *n)
	if err != nil {
		return err
	}
	big, err := createConversations(*base, acc.Token, "bench listing", 1)
	if err != nil {
		return err
	}
	small, err := createConversations(*base, acc.Token, "bench small tree", 1)
	if err != nil {
		return err
	}
	files := map[string]string{
		"token":      acc.Token + "\n",
		"user_id":    acc.UserID + "\n",
		"convs":      strings.Join(ids, "\n") + "\n",
		"big_conv":   big[0] + "\n",
		"small_conv": small[0] + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(*out, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// token: a page token as the message service makes it, the base64url
// (unpadded, absl::WebSafeBase64Escape) serialization of
// chat.internal.MessageCursor {conversation_id = 1, descending = 2, seq = 3}.
func cmdToken(args []string) error {
	fs := flag.NewFlagSet("token", flag.ExitOnError)
	conv := fs.String("conv", "", "conversation id")
	seq := fs.Int64("seq", 0, "position of the last message of the previous page")
	desc := fs.Bool("desc", false, "a newest-first listing")
	fs.Parse(args)
	var b []byte
	b = append(b, 0x0a) // field 1, length-delimited
	b = appendVarint(b, uint64(len(*conv)))
	b = append(b, *conv...)
	if *desc {
		b = append(b, 0x10, 1) // field 2, varint
	}
	if *seq != 0 {
		b = append(b, 0x18) // field 3, varint
		b = appendVarint(b, uint64(*seq))
	}
	fmt.Println(base64.RawURLEncoding.EncodeToString(b))
	return nil
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
