package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sseEvents reads Server-Sent Events and calls fn with each event's name
// until fn returns false or the body ends.
func sseEvents(body io.Reader, fn func(event, data string) bool) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	event, data := "", ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event != "" || data != "" {
				if !fn(event, data) {
					return nil
				}
			}
			event, data = "", ""
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			data = strings.TrimSpace(line[len("data:"):])
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// chatRequest starts POST /v1/conversations/{conv}/chat asking for SSE.
func chatRequest(ctx context.Context, client *http.Client, base, token, conv, content string) (*http.Response, error) {
	body := fmt.Sprintf(`{"content":%q}`, content)
	req, err := http.NewRequestWithContext(ctx, "POST",
		base+"/v1/conversations/"+conv+"/chat", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// ttfb measures, one request at a time: the fake provider's own time to its
// first content chunk (the client talks to it directly), and through the
// stack (REST, SSE) the time to the first event (the stored user message)
// and to the first delta of the reply.
func cmdTTFB(args []string) error {
	fs := flag.NewFlagSet("ttfb", flag.ExitOnError)
	base := fs.String("base", "", "gateway base URL")
	tokenFile := fs.String("token-file", "", "file with an access token")
	provider := fs.String("provider", "", "fake provider base URL (…/v1)")
	n := fs.Int("n", 200, "requests each way")
	convCount := fs.Int("convs", 20, "conversations to spread the chats over")
	resultsFile := fs.String("results", "", "results file")
	prefix := fs.String("prefix", "ttfb", "key prefix")
	fs.Parse(args)
	tokenLines, err := readLines(*tokenFile)
	if err != nil {
		return err
	}
	token := tokenLines[0]
	convs, err := createConversations(*base, token, "bench ttfb", *convCount)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second}

	direct := func() (time.Duration, error) {
		body := `{"model":"bench-model","stream":true,"messages":[{"role":"user","content":"ttfb"}]}`
		t0 := time.Now()
		resp, err := client.Post(*provider+"/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("provider status %d", resp.StatusCode)
		}
		var first time.Duration
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if first == 0 && strings.Contains(sc.Text(), `"content":`) {
				first = time.Since(t0)
			}
		}
		if first == 0 {
			return 0, errors.New("no content chunk from the provider")
		}
		return first, sc.Err()
	}
	stack := func(i int) (firstEvent, firstDelta time.Duration, err error) {
		t0 := time.Now()
		resp, err := chatRequest(context.Background(), client, *base, token, convs[i%len(convs)],
			fmt.Sprintf("time to first byte, request %d", i))
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		var failure error
		err = sseEvents(resp.Body, func(event, data string) bool {
			if firstEvent == 0 {
				firstEvent = time.Since(t0)
			}
			switch event {
			case "delta":
				if firstDelta == 0 {
					firstDelta = time.Since(t0)
				}
			case "error":
				failure = fmt.Errorf("error event: %s", data)
				return false
			case "done":
				return false
			}
			return true
		})
		if failure != nil {
			return 0, 0, failure
		}
		if err != nil {
			return 0, 0, err
		}
		if firstDelta == 0 {
			return 0, 0, errors.New("the stream had no delta")
		}
		return firstEvent, firstDelta, nil
	}

	var provLat, eventLat, deltaLat []time.Duration
	errorsSeen := 0
	var firstErr error
	note := func(err error) {
		errorsSeen++
		if firstErr == nil {
			firstErr = err
		}
	}
	// One unrecorded round each way warms connections and caches.
	direct()
	stack(0)
	for i := 0; i < *n; i++ {
		if d, err := direct(); err != nil {
			note(err)
		} else {
			provLat = append(provLat, d)
		}
	}
	for i := 0; i < *n; i++ {
		if e, d, err := stack(i); err != nil {
			note(err)
		} else {
			eventLat = append(eventLat, e)
			deltaLat = append(deltaLat, d)
		}
	}
	sortDurations(provLat)
	sortDurations(eventLat)
	sortDurations(deltaLat)
	kv := map[string]string{
		"provider.p50_ms": ms(percentile(provLat, 50)), "provider.p99_ms": ms(percentile(provLat, 99)),
		"provider.ok":  strconv.Itoa(len(provLat)),
		"event.p50_ms": ms(percentile(eventLat, 50)), "event.p99_ms": ms(percentile(eventLat, 99)),
		"delta.p50_ms": ms(percentile(deltaLat, 50)), "delta.p99_ms": ms(percentile(deltaLat, 99)),
		"delta.ok": strconv.Itoa(len(deltaLat)),
		"errors":   strconv.Itoa(errorsSeen),
		"n":        strconv.Itoa(*n),
	}
	if firstErr != nil {
		kv["error_detail"] = firstErr.Error()
	}
	fmt.Printf("ttfb: provider p50 %s ms, through the stack: first event p50 %s ms, first delta p50 %s ms, %d errors\n",
		kv["provider.p50_ms"], kv["event.p50_ms"], kv["delta.p50_ms"], errorsSeen)
	return record(*resultsFile, *prefix, kv)
}

type memory struct{ rssKiB, threads int }

func readMemory(pid int) memory {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}
	}
	var m memory
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "VmRSS:":
			m.rssKiB, _ = strconv.Atoi(fields[1])
		case "Threads:":
			m.threads, _ = strconv.Atoi(fields[1])
		}
	}
	return m
}

// streams opens -n chat streams at once through the gateway (SSE) against a
// provider that holds each reply after its first chunk, waits until every
// stream has delivered that first delta, reads the RSS and thread count of
// each process of -pids, releases the provider, waits for every stream to
// end with `done`, and reads them again.
func cmdStreams(args []string) error {
	fs := flag.NewFlagSet("streams", flag.ExitOnError)
	base := fs.String("base", "", "gateway base URL")
	tokenFile := fs.String("token-file", "", "file with an access token")
	provider := fs.String("provider", "", "fake provider base URL (…/v1)")
	n := fs.Int("n", 1000, "streams to hold open at once")
	pidSpec := fs.String("pids", "", "name=pid,... of the processes to measure")
	limit := fs.Duration("timeout", 90*time.Second, "give up after this long")
	resultsFile := fs.String("results", "", "results file")
	prefix := fs.String("prefix", "streams", "key prefix")
	fs.Parse(args)
	pids, err := parsePids(*pidSpec)
	if err != nil {
		return err
	}
	tokenLines, err := readLines(*tokenFile)
	if err != nil {
		return err
	}
	token := tokenLines[0]
	providerRoot := strings.TrimSuffix(*provider, "/v1")

	convs, err := createConversations(*base, token, "bench stream", *n)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *limit)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: *n, MaxIdleConnsPerHost: *n, IdleConnTimeout: 30 * time.Second,
	}}

	kv := map[string]string{"n": strconv.Itoa(*n)}
	time.Sleep(500 * time.Millisecond)
	for name, pid := range pids {
		m := readMemory(pid)
		kv[name+".idle_kib"] = strconv.Itoa(m.rssKiB)
		kv[name+".idle_threads"] = strconv.Itoa(m.threads)
	}

	var opened, done, failed atomic.Int64
	var errMu sync.Mutex
	errorKinds := map[string]int{}
	fail := func(err error) {
		failed.Add(1)
		msg := err.Error()
		if len(msg) > 160 {
			msg = msg[:160]
		}
		errMu.Lock()
		errorKinds[msg]++
		errMu.Unlock()
	}
	var openWG, allWG sync.WaitGroup
	openSlots := make(chan struct{}, 64) // connections being set up at once
	start := time.Now()
	for i := 0; i < *n; i++ {
		openWG.Add(1)
		allWG.Add(1)
		go func(i int) {
			defer allWG.Done()
			openedHere := false
			markOpen := func() {
				if !openedHere {
					openedHere = true
					openWG.Done()
				}
			}
			defer markOpen()
			openSlots <- struct{}{}
			resp, err := chatRequest(ctx, client, *base, token, convs[i],
				fmt.Sprintf("stream %d %s", i, holdMarker))
			<-openSlots
			if err != nil {
				fail(err)
				return
			}
			defer resp.Body.Close()
			var failure error
			sawDone := false
			err = sseEvents(resp.Body, func(event, data string) bool {
				switch event {
				case "delta":
					if !openedHere {
						opened.Add(1)
						markOpen()
					}
				case "error":
					failure = fmt.Errorf("error event: %s", data)
					return false
				case "done":
					sawDone = true
					return false
				}
				return true
			})
			switch {
			case failure != nil:
				fail(failure)
			case sawDone:
				done.Add(1)
			case err != nil:
				fail(err)
			}
		}(i)
	}
	waitCtx := func(wg *sync.WaitGroup) bool {
		ch := make(chan struct{})
		go func() { wg.Wait(); close(ch) }()
		select {
		case <-ch:
			return true
		case <-ctx.Done():
			return false
		}
	}
	allOpen := waitCtx(&openWG)
	kv["open_seconds"] = f2(time.Since(start).Seconds())
	kv["opened"] = strconv.Itoa(int(opened.Load()))
	time.Sleep(time.Second)
	if stats, err := getText(providerRoot + "/stats"); err == nil {
		kv["provider_stats_open"] = stats
	}
	for name, pid := range pids {
		m := readMemory(pid)
		kv[name+".open_kib"] = strconv.Itoa(m.rssKiB)
		kv[name+".open_threads"] = strconv.Itoa(m.threads)
	}
	fmt.Printf("streams: %d of %d open (all open: %v) after %ss\n", opened.Load(), *n, allOpen, kv["open_seconds"])

	if req, err := http.NewRequest("POST", providerRoot+"/release", nil); err == nil {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		} else {
			fail(fmt.Errorf("release: %v", err))
		}
	}
	finished := waitCtx(&allWG)
	cancel()
	if !finished {
		allWG.Wait() // the cancelled context ends every request
	}
	client.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	for name, pid := range pids {
		m := readMemory(pid)
		kv[name+".after_kib"] = strconv.Itoa(m.rssKiB)
		kv[name+".after_threads"] = strconv.Itoa(m.threads)
	}
	kv["done"] = strconv.Itoa(int(done.Load()))
	kv["errors"] = strconv.Itoa(*n - int(done.Load())) // every stream that did not end with done
	if len(errorKinds) > 0 {
		var parts []string
		for msg, c := range errorKinds {
			parts = append(parts, fmt.Sprintf("%q x%d", msg, c))
		}
		kv["error_detail"] = strings.Join(parts, "; ")
	}
	fmt.Printf("streams: %d ended with done, %s not\n", done.Load(), kv["errors"])
	return record(*resultsFile, *prefix, kv)
}

func getText(url string) (string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}
