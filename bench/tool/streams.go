package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// sseEvents reads Server-Sent Events and calls fn with each event's name
// until fn returns false or the body ends.
func sseEvents(body io.Reader, fn func(event, data string) bool) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 4<<10), 4<<20) // small: thousands are open at once
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

// doneStatus is the status of the message in a `done` event's data ("" if
// it has none): `complete` for a reply that ended well, `incomplete` for one
// that was stopped.
func doneStatus(data string) string {
	var d struct {
		Message struct {
			Status string `json:"status"`
		} `json:"message"`
	}
	json.Unmarshal([]byte(data), &d)
	return d.Message.Status
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

// streamClient is the HTTP/1.1 client of the held streams: one connection a
// stream, as an EventSource over http:// has, and up to conns of them kept
// idle between uses.
func streamClient(conns int) *http.Client {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		Protocols:           protocols,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
}

// raiseFileLimit raises the soft limit of open files to the hard one: each
// held stream is a connection. (Go does this at start since 1.19; this
// makes it explicit and says what the limit is.)
func raiseFileLimit(need int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Printf("raising the open files limit to %d: %v", lim.Max, err)
		}
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < uint64(need)+100 {
		log.Printf("warning: %d open files at most (ulimit -n), %d streams need more", lim.Cur, need)
	}
}

// scaledTimeout is how long opening (or ending) n held streams may take
// when the flag says 0: 60 s and 50 ms a stream (10,000: 560 s; on 2 cores
// they opened in 183 s).
func scaledTimeout(flagValue time.Duration, n int) time.Duration {
	if flagValue > 0 {
		return flagValue
	}
	return 60*time.Second + time.Duration(n)*50*time.Millisecond
}

// setupSlots is how many held streams are set up at once (request sent,
// first event not yet back).
const setupSlots = 64

// held is a set of chat streams (SSE through the gateway) whose replies the
// fake provider holds after the first chunk (holdMarker): a stream is open
// once its first delta has arrived, and ends well with `done` of a
// `complete` reply after the release (a reply stopped while held ends with
// `done` too, but `incomplete`).
type held struct {
	start  time.Time
	opened atomic.Int64 // streams that had their first delta
	live   atomic.Int64 // of those, the ones not ended yet
	done   atomic.Int64 // streams that ended well
	// released is set just before the provider is released: a stream that
	// ends before it was not held.
	released      atomic.Bool
	openWG, allWG sync.WaitGroup
	errMu         sync.Mutex
	errorKinds    map[string]int
}

// release lets the provider go on with the replies it holds.
func (h *held) release(providerRoot string) {
	h.released.Store(true)
	if err := releaseProvider(providerRoot); err != nil {
		h.fail(fmt.Errorf("release: %v", err))
	}
}

func (h *held) fail(err error) {
	msg := err.Error()
	if len(msg) > 160 {
		msg = msg[:160]
	}
	h.errMu.Lock()
	h.errorKinds[msg]++
	h.errMu.Unlock()
}

// errorDetail: each kind of failure and how often, "" when none.
func (h *held) errorDetail() string {
	h.errMu.Lock()
	defer h.errMu.Unlock()
	var parts []string
	for msg, c := range h.errorKinds {
		parts = append(parts, fmt.Sprintf("%q x%d", msg, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// holdStreams starts one held chat stream in each conversation of convs
// (ctx ends them all) and returns at once; at most setupSlots are set up
// at a time.
func holdStreams(ctx context.Context, client *http.Client, base, token string, convs []string, label string) *held {
	h := &held{start: time.Now(), errorKinds: map[string]int{}}
	slots := make(chan struct{}, setupSlots)
	for i := range convs {
		h.openWG.Add(1)
		h.allWG.Add(1)
		go func(i int) {
			defer h.allWG.Done()
			openedHere := false
			markOpen := func() {
				if !openedHere {
					openedHere = true
					h.openWG.Done()
				}
			}
			defer markOpen()
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				h.fail(ctx.Err())
				return
			}
			resp, err := chatRequest(ctx, client, base, token, convs[i],
				fmt.Sprintf("%s %d %s", label, i, holdMarker))
			<-slots
			if err != nil {
				h.fail(err)
				return
			}
			defer resp.Body.Close()
			var failure error
			sawDone, hadDelta := false, false
			defer func() {
				if hadDelta {
					h.live.Add(-1)
				}
			}()
			err = sseEvents(resp.Body, func(event, data string) bool {
				switch event {
				case "delta":
					if !hadDelta {
						hadDelta = true
						h.opened.Add(1)
						h.live.Add(1)
						markOpen()
					}
				case "error":
					failure = fmt.Errorf("error event: %s", data)
					return false
				case "done":
					if st := doneStatus(data); st != "complete" {
						failure = fmt.Errorf("done with status %q", st)
					}
					sawDone = true
					return false
				}
				return true
			})
			if (sawDone || failure != nil) && !h.released.Load() {
				if failure == nil {
					failure = errors.New("done")
				}
				failure = fmt.Errorf("ended before the release: %v", failure)
			}
			switch {
			case failure != nil:
				h.fail(failure)
			case sawDone:
				h.done.Add(1)
			case err != nil:
				h.fail(err)
			default:
				h.fail(errors.New("the stream ended without done"))
			}
		}(i)
	}
	return h
}

// waitFor waits for wg for at most d; false if it had to give up.
func waitFor(wg *sync.WaitGroup, d time.Duration) bool {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// releaseProvider lets go of the replies the fake provider holds
// (providerRoot: its URL without /v1).
func releaseProvider(providerRoot string) error {
	resp, err := httpClient.Post(providerRoot+"/release", "text/plain", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST /release: status %d", resp.StatusCode)
	}
	return nil
}

// ttfb measures, one request at a time: the fake provider's own time to its
// first content chunk (the client talks to it directly), and through the
// stack (REST, SSE) the time to the first event (the stored user message)
// and to the first delta of the reply. With -background N it first opens N
// held chat streams (as streams does) and measures while they are in
// progress; then it releases them and counts each that does not end with
// `done` as an error. The background streams belong to an account of their
// own (registered here), so that the measured user starts each reply with
// none of its own in progress, as under the default MAX_STREAMS_PER_USER
// (4) every user does: 1,000 replies of one user would make each of the
// measured starts count that user's 1,000 (start_reply's cap), a cost of
// the bench's raised cap, not of the load. -background-same-user keeps
// them on the measured user's account.
func cmdTTFB(args []string) error {
	fs := flag.NewFlagSet("ttfb", flag.ExitOnError)
	flags := addChatFlags(fs, "ttfb")
	n := fs.Int("n", 200, "requests each way")
	convCount := fs.Int("convs", 20, "conversations to spread the chats over")
	background := fs.Int("background", 0, "held chat streams in progress during the measurement")
	limit := fs.Duration("timeout", 0, "give up waiting for the background streams to open, "+
		"and then to end, after this long each (0: 60 s + 50 ms a stream)")
	sameUser := fs.Bool("background-same-user", false,
		"open the background streams as the measured user")
	fs.Parse(args)
	base, provider := flags.base, flags.provider
	token, providerRoot, err := flags.session()
	if err != nil {
		return err
	}
	convs, err := createConversations(*base, token, "bench ttfb", *convCount)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	kv := map[string]string{"n": strconv.Itoa(*n)}

	var bg *held
	bgCtx, bgCancel := context.WithCancel(context.Background())
	defer bgCancel()
	wait := scaledTimeout(*limit, *background)
	if *background > 0 {
		raiseFileLimit(*background)
		bgToken := token
		if !*sameUser {
			acc, err := register(*base)
			if err != nil {
				return fmt.Errorf("the background streams' account: %w", err)
			}
			bgToken = acc.Token
		}
		kv["background.same_user"] = strconv.FormatBool(*sameUser)
		bgConvs, err := createConversations(*base, bgToken, "bench ttfb background", *background)
		if err != nil {
			return err
		}
		bg = holdStreams(bgCtx, streamClient(*background), *base, bgToken, bgConvs, "ttfb background")
		allOpen := waitFor(&bg.openWG, wait)
		kv["background.n"] = strconv.Itoa(*background)
		kv["background.opened"] = strconv.Itoa(int(bg.opened.Load()))
		kv["background.live_before"] = strconv.Itoa(int(bg.live.Load()))
		kv["background.open_seconds"] = f2(time.Since(bg.start).Seconds())
		if stats, err := getText(providerRoot + "/stats"); err == nil {
			kv["background.provider_stats"] = stats
		}
		fmt.Printf("ttfb: %d of %d background streams open (all open: %v) after %ss, %s in progress\n",
			bg.opened.Load(), *background, allOpen, kv["background.open_seconds"], kv["background.live_before"])
	}

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
				if st := doneStatus(data); st != "complete" {
					failure = fmt.Errorf("done with status %q", st)
				}
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
	var errs tally
	note := errs.note
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

	if bg != nil {
		// Every background stream still open: release, and each must end
		// with done.
		kv["background.live_after"] = strconv.Itoa(int(bg.live.Load()))
		fmt.Printf("ttfb: %s background streams in progress after the measurement\n", kv["background.live_after"])
		bg.finish(providerRoot, wait, bgCancel)
		failed := *background - int(bg.done.Load())
		kv["background.done"] = strconv.Itoa(int(bg.done.Load()))
		kv["background.errors"] = strconv.Itoa(failed)
		if d := bg.errorDetail(); d != "" {
			kv["background.error_detail"] = d
		}
		errs.add(failed, fmt.Errorf("background streams: %s", bg.errorDetail()))
		fmt.Printf("ttfb: %d background streams ended complete (done) after the release, %d not\n", bg.done.Load(), failed)
	}

	sortDurations(provLat)
	sortDurations(eventLat)
	sortDurations(deltaLat)
	for k, v := range map[string]string{
		"provider.p50_ms": ms(percentile(provLat, 50)), "provider.p99_ms": ms(percentile(provLat, 99)),
		"provider.ok":  strconv.Itoa(len(provLat)),
		"event.p50_ms": ms(percentile(eventLat, 50)), "event.p99_ms": ms(percentile(eventLat, 99)),
		"delta.p50_ms": ms(percentile(deltaLat, 50)), "delta.p99_ms": ms(percentile(deltaLat, 99)),
		"delta.ok": strconv.Itoa(len(deltaLat)),
		"errors":   strconv.Itoa(errs.count),
	} {
		kv[k] = v
	}
	if errs.first != nil {
		kv["error_detail"] = errs.first.Error()
	}
	fmt.Printf("ttfb: provider p50 %s ms, through the stack: first event p50 %s ms, first delta p50 %s ms, %d errors\n",
		kv["provider.p50_ms"], kv["event.p50_ms"], kv["delta.p50_ms"], errs.count)
	return record(*flags.resultsFile, *flags.prefix, kv)
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
	flags := addChatFlags(fs, "streams")
	n := fs.Int("n", 1000, "streams to hold open at once")
	pidSpec := fs.String("pids", "", "name=pid,... of the processes to measure")
	limit := fs.Duration("timeout", 0, "give up waiting for the streams to open, and then to end, "+
		"after this long each (0: 60 s + 50 ms a stream)")
	fs.Parse(args)
	pids, err := parsePids(*pidSpec)
	if err != nil {
		return err
	}
	base := flags.base
	token, providerRoot, err := flags.session()
	if err != nil {
		return err
	}
	raiseFileLimit(*n)
	wait := scaledTimeout(*limit, *n)

	convs, err := createConversations(*base, token, "bench stream", *n)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := streamClient(*n)

	kv := map[string]string{"n": strconv.Itoa(*n)}
	time.Sleep(500 * time.Millisecond)
	for name, pid := range pids {
		m := readMemory(pid)
		kv[name+".idle_kib"] = strconv.Itoa(m.rssKiB)
		kv[name+".idle_threads"] = strconv.Itoa(m.threads)
	}

	h := holdStreams(ctx, client, *base, token, convs, "stream")
	allOpen := waitFor(&h.openWG, wait)
	kv["open_seconds"] = f2(time.Since(h.start).Seconds())
	kv["opened"] = strconv.Itoa(int(h.opened.Load()))
	time.Sleep(time.Second)
	kv["live_open"] = strconv.Itoa(int(h.live.Load())) // in progress as the memory is read
	if stats, err := getText(providerRoot + "/stats"); err == nil {
		kv["provider_stats_open"] = stats
	}
	for name, pid := range pids {
		m := readMemory(pid)
		kv[name+".open_kib"] = strconv.Itoa(m.rssKiB)
		kv[name+".open_threads"] = strconv.Itoa(m.threads)
	}
	fmt.Printf("streams: %d of %d open (all open: %v) after %ss, %s in progress a second later\n",
		h.opened.Load(), *n, allOpen, kv["open_seconds"], kv["live_open"])

	h.finish(providerRoot, wait, cancel)
	client.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	for name, pid := range pids {
		m := readMemory(pid)
		kv[name+".after_kib"] = strconv.Itoa(m.rssKiB)
		kv[name+".after_threads"] = strconv.Itoa(m.threads)
	}
	kv["done"] = strconv.Itoa(int(h.done.Load()))
	kv["errors"] = strconv.Itoa(*n - int(h.done.Load())) // every stream that did not end with done
	if d := h.errorDetail(); d != "" {
		kv["error_detail"] = d
	}
	fmt.Printf("streams: %d ended complete (done) after the release, %s not\n", h.done.Load(), kv["errors"])
	return record(*flags.resultsFile, *flags.prefix, kv)
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
