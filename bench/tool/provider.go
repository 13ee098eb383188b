package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// chunk is one `data:` event of an OpenAI Chat Completions stream.
func chunk(text string) string {
	b, _ := json.Marshal(map[string]any{
		"id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": "bench-model",
		"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": text}}},
	})
	return "data: " + string(b) + "\n\n"
}

const finalChunks = `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","model":"bench-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","model":"bench-model","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}

data: [DONE]

`

// holdMarker in the last message makes the provider send its first chunk and
// then wait for POST /release (or for the caller to hang up). Each
// POST /release lets go of the replies held until then; replies held later
// wait for the next one, so that every step of the benchmark can hold its
// own.
const holdMarker = "[hold]"

// provider: a fake OpenAI-compatible server on loopback. Every reply: the
// response headers at once, the first chunk after -first-delay, then
// -chunks-1 more chunks -interval apart, then finish_reason, usage and
// [DONE]. GET /stats answers {"active": replies under way, "held": of those
// waiting for POST /release, "served": total}.
// It exits by itself after -lifetime. -proto chooses how it is spoken to:
// http1 (plain HTTP/1.1), h2 (TLS offering HTTP/2 and HTTP/1.1 by ALPN, as
// hosted providers do, with a throw-away self-signed certificate written to
// -cert-out for the client to trust) or h1tls (the same TLS, HTTP/1.1
// alone). In /stats, "conns" counts the connections
// accepted and "open_conns" those still open.
func cmdProvider(args []string) error {
	fs := flag.NewFlagSet("provider", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	proto := fs.String("proto", "http1", "http1, h2 (over TLS) or h1tls (HTTP/1.1 alone over TLS)")
	certOut := fs.String("cert-out", "", "with -proto h2: write the server's certificate (PEM) here")
	maxStreams := fs.Int("max-streams", 250, "HTTP/2 streams per connection the server allows (Go's default, about what hosted providers allow)")
	firstDelay := fs.Duration("first-delay", 50*time.Millisecond, "time to the first chunk")
	interval := fs.Duration("interval", 10*time.Millisecond, "time between chunks")
	chunks := fs.Int("chunks", 5, "content chunks per reply")
	lifetime := fs.Duration("lifetime", 15*time.Minute, "exit after this long")
	fs.Parse(args)

	var active, served, held, conns, openConns atomic.Int64
	// release is closed by POST /release and replaced by a new one for the
	// replies held after it.
	var releaseMu sync.Mutex
	release := make(chan struct{})
	holdRound := func() <-chan struct{} {
		releaseMu.Lock()
		defer releaseMu.Unlock()
		return release
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Stream   bool `json:"stream"`
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !body.Stream {
			http.Error(w, `{"error":{"message":"want a streaming chat completion"}}`, http.StatusBadRequest)
			return
		}
		active.Add(1)
		defer active.Add(-1)
		defer served.Add(1)
		hold := len(body.Messages) > 0 &&
			strings.Contains(body.Messages[len(body.Messages)-1].Content, holdMarker)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		flusher := w.(http.Flusher)
		flusher.Flush()
		ctx := r.Context()
		wait := func(d time.Duration) bool {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return true
			case <-ctx.Done():
				return false
			}
		}
		send := func(s string) {
			fmt.Fprint(w, s)
			flusher.Flush()
		}
		if !wait(*firstDelay) {
			return
		}
		// A held reply joins the round of releases before its first chunk
		// goes out: whoever has seen that chunk and then releases, releases
		// it.
		var round <-chan struct{}
		if hold {
			round = holdRound()
		}
		send(chunk("Hello"))
		if hold {
			held.Add(1)
			select {
			case <-round:
				held.Add(-1)
			case <-ctx.Done():
				held.Add(-1)
				return
			}
		}
		for i := 1; i < *chunks; i++ {
			if !wait(*interval) {
				return
			}
			send(chunk(fmt.Sprintf(" word%d", i)))
		}
		send(finalChunks)
	})
	mux.HandleFunc("POST /release", func(w http.ResponseWriter, r *http.Request) {
		releaseMu.Lock()
		close(release)
		release = make(chan struct{})
		releaseMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"active":%d,"held":%d,"served":%d,"conns":%d,"open_conns":%d}`,
			active.Load(), held.Load(), served.Load(), conns.Load(), openConns.Load())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: *maxStreams},
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				conns.Add(1)
				openConns.Add(1)
			case http.StateClosed, http.StateHijacked:
				openConns.Add(-1)
			}
		}}
	scheme := "http"
	switch *proto {
	case "http1": // a plain listener: HTTP/1.1 only
	case "h2", "h1tls":
		scheme = "https"
		cert, err := selfSignedCert(*certOut)
		if err != nil {
			return err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		if *proto == "h1tls" { // ALPN offers http/1.1 alone
			srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		}
	default:
		return fmt.Errorf("-proto %q: use http1, h2 or h1tls", *proto)
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Printf("fake provider on %s://%s/v1 (%s, first chunk after %v, %d chunks %v apart)",
		scheme, l.Addr(), *proto, *firstDelay, *chunks, *interval)
	time.AfterFunc(*lifetime, func() {
		log.Printf("lifetime of %v is over; exiting", *lifetime)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		os.Exit(0)
	})
	if scheme == "https" {
		return srv.ServeTLS(l, "", "")
	}
	return srv.Serve(l)
}

// selfSignedCert makes a throw-away key and certificate for 127.0.0.1 and
// writes the certificate (PEM) to certOut, for the client to trust as its
// only authority.
func selfSignedCert(certOut string) (tls.Certificate, error) {
	if certOut == "" {
		return tls.Certificate{}, errors.New("TLS (-proto h2 or h1tls) needs -cert-out")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "benchtool fake provider"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// Written whole under a temporary name, then renamed: a reader that
	// sees the file sees all of it.
	if err := os.WriteFile(certOut+".tmp", certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.Rename(certOut+".tmp", certOut); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
