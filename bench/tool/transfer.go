package main

// Export and import throughput (issue 12): GET /v1/export of a user with
// many messages, streamed to a file while the RSS of the gateway and of the
// message service is sampled, then POST /v1/import of (the first lines of)
// that file into a fresh account.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// transferClient has no overall timeout: an export or import of a large
// history takes minutes.
var transferClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// transfer-setup: a user with -convs conversations (seeded by SQL after).
// Files in -out: token, user_id, convs (one id a line).
func cmdTransferSetup(args []string) error {
	fs := flag.NewFlagSet("transfer-setup", flag.ExitOnError)
	base := fs.String("base", "", "gateway base URL")
	n := fs.Int("convs", 100, "conversations")
	out := fs.String("out", "", "directory for the files")
	fs.Parse(args)
	acc, err := register(*base)
	if err != nil {
		return err
	}
	ids, err := createConversations(*base, acc.Token, "bench export", *n)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	for name, content := range map[string]string{
		"token": acc.Token + "\n", "user_id": acc.UserID + "\n", "convs": strings.Join(ids, "\n") + "\n",
	} {
		if err := os.WriteFile(filepath.Join(*out, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// rssSampler reads the RSS of processes every 100 ms and keeps the peak.
type rssSampler struct {
	pids map[string]int
	mu   sync.Mutex
	peak map[string]int
	stop chan struct{}
	done chan struct{}
}

func startRSS(pids map[string]int) *rssSampler {
	s := &rssSampler{pids: pids, peak: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				s.sample()
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, pid := range s.pids {
		if m := readMemory(pid); m.rssKiB > s.peak[name] {
			s.peak[name] = m.rssKiB
		}
	}
}

func (s *rssSampler) end() map[string]int {
	close(s.stop)
	<-s.done
	return s.peak
}

func currentRSS(pids map[string]int) map[string]int {
	out := map[string]int{}
	for name, pid := range pids {
		out[name] = readMemory(pid).rssKiB
	}
	return out
}

// exportCounter counts the lines of an export and the messages in them as
// the bytes go by: each line holds one `{"id":"` for its conversation and
// one per message (ids come first in every object, as protojson writes
// fields in number order; the seeded contents hold no such text).
type exportCounter struct {
	w        io.Writer
	tail     []byte // the end of the previous write: a marker may be cut
	bytes    int64
	markers  atomic.Int64
	lines    atomic.Int64
	lineEnds []lineEnd // offset after each line, messages up to it
}

type lineEnd struct{ offset, messages int64 }

var idMarker = []byte(`{"id":"`)

func (c *exportCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	// The tail holds no newline and no whole marker: only the start of
	// one that this write may complete.
	data := append(append(make([]byte, 0, len(c.tail)+n), c.tail...), p[:n]...)
	pos := c.bytes - int64(len(c.tail)) // the file offset of data[0]
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		c.markers.Add(int64(bytes.Count(data[:i], idMarker)))
		lines := c.lines.Add(1)
		c.lineEnds = append(c.lineEnds, lineEnd{offset: pos + int64(i) + 1, messages: c.markers.Load() - lines})
		data, pos = data[i+1:], pos+int64(i)+1
	}
	c.markers.Add(int64(bytes.Count(data, idMarker)))
	keep := min(len(data), len(idMarker)-1)
	c.tail = append(c.tail[:0], data[len(data)-keep:]...)
	c.bytes += int64(n)
	return n, err
}

func (c *exportCounter) messages() int64 { return c.markers.Load() - c.lines.Load() }

// transfer -phase export: the export of -token-file's account into -file,
// with the RSS of -pids before, once -expect/10 messages went by, and at
// the peak. transfer -phase import: the file's first whole lines, at most
// -import-bytes, imported into a fresh account, with the time and peak RSS.
func cmdTransfer(args []string) error {
	fs := flag.NewFlagSet("transfer", flag.ExitOnError)
	phase := fs.String("phase", "", "export or import")
	base := fs.String("base", "", "gateway base URL")
	tokenFile := fs.String("token-file", "", "access token of the exporting account")
	file := fs.String("file", "", "where the export goes")
	expect := fs.Int64("expect", 0, "messages the export should hold")
	importBytes := fs.Int64("import-bytes", 200<<20, "import at most this much of the export (whole lines)")
	pidSpec := fs.String("pids", "", "name=pid,... of the processes to watch")
	resultsFile := fs.String("results", "", "results file")
	fs.Parse(args)
	pids, err := parsePids(*pidSpec)
	if err != nil {
		return err
	}
	var kv map[string]string
	switch *phase {
	case "export":
		tok, err := os.ReadFile(*tokenFile)
		if err != nil {
			return err
		}
		kv, err = timeExport(*base, strings.TrimSpace(string(tok)), *file, *expect, pids)
		if err != nil {
			return err
		}
	case "import":
		if kv, err = timeImport(*base, *file, *importBytes, pids); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-phase %q: want export or import", *phase)
	}
	return record(*resultsFile, "transfer", kv)
}

func timeExport(base, token, file string, expect int64, pids map[string]int) (map[string]string, error) {
	kv := map[string]string{}
	idle := currentRSS(pids)
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	counter := &exportCounter{w: f}
	sampler := startRSS(pids)
	at10 := map[string]int{}
	watchDone := make(chan struct{})
	go func() { // The RSS once a tenth of the messages went by.
		defer close(watchDone)
		for counter.messages() < expect/10 {
			select {
			case <-sampler.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		for name, v := range currentRSS(pids) {
			at10[name] = v
		}
	}()
	req, err := http.NewRequest("GET", base+"/v1/export", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := transferClient.Do(req)
	if err != nil {
		sampler.end()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		sampler.end()
		return nil, fmt.Errorf("export: status %d: %s", resp.StatusCode, body)
	}
	_, err = io.Copy(counter, resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	peak := sampler.end()
	<-watchDone
	if err != nil {
		return nil, fmt.Errorf("export: reading: %w", err)
	}
	if last, err := lastLine(f, counter.bytes); err != nil || strings.HasPrefix(last, `{"error"`) {
		return nil, fmt.Errorf("export ended with an error: %v %.300s", err, last)
	}
	msgs := counter.messages()
	if expect > 0 && msgs != expect {
		return nil, fmt.Errorf("export held %d messages, want %d", msgs, expect)
	}
	kv["export.messages"] = strconv.FormatInt(msgs, 10)
	kv["export.conversations"] = strconv.FormatInt(counter.lines.Load(), 10)
	kv["export.bytes"] = strconv.FormatInt(counter.bytes, 10)
	kv["export.seconds"] = f2(elapsed.Seconds())
	kv["export.rate"] = f2(float64(msgs) / elapsed.Seconds())
	for name := range pids {
		kv["export.rss_idle_kib."+name] = strconv.Itoa(idle[name])
		kv["export.rss_at10_kib."+name] = strconv.Itoa(at10[name])
		kv["export.rss_peak_kib."+name] = strconv.Itoa(peak[name])
	}
	fmt.Printf("export: %d messages in %d conversations, %.1f MB in %.1f s: %.0f messages/s\n",
		msgs, counter.lines.Load(), float64(counter.bytes)/1e6, elapsed.Seconds(), float64(msgs)/elapsed.Seconds())
	return kv, nil
}

func timeImport(base, file string, importBytes int64, pids map[string]int) (map[string]string, error) {
	kv := map[string]string{}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Where the lines end, and the messages up to each.
	counter := &exportCounter{w: io.Discard}
	if _, err := io.Copy(counter, f); err != nil {
		return nil, err
	}
	var cut lineEnd
	for _, l := range counter.lineEnds {
		if l.offset > importBytes {
			break
		}
		cut = l
	}
	if cut.offset == 0 {
		return nil, errors.New("import: the first line alone is over -import-bytes")
	}
	acc, err := register(base)
	if err != nil {
		return nil, err
	}
	idle := currentRSS(pids)
	sampler := startRSS(pids)
	req, err := http.NewRequest("POST", base+"/v1/import", io.NewSectionReader(f, 0, cut.offset))
	if err != nil {
		sampler.end()
		return nil, err
	}
	req.ContentLength = cut.offset
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+acc.Token)
	start := time.Now()
	resp, err := transferClient.Do(req)
	if err != nil {
		sampler.end()
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	peak := sampler.end()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("import: status %d: %s", resp.StatusCode, body)
	}
	var answer struct{ Imported, Skipped int }
	if err := json.Unmarshal(body, &answer); err != nil {
		return nil, fmt.Errorf("import: %v: %s", err, body)
	}
	kv["import.messages"] = strconv.FormatInt(cut.messages, 10)
	kv["import.bytes"] = strconv.FormatInt(cut.offset, 10)
	kv["import.imported"] = strconv.Itoa(answer.Imported)
	kv["import.seconds"] = f2(elapsed.Seconds())
	kv["import.rate"] = f2(float64(cut.messages) / elapsed.Seconds())
	for name := range pids {
		kv["import.rss_idle_kib."+name] = strconv.Itoa(idle[name])
		kv["import.rss_peak_kib."+name] = strconv.Itoa(peak[name])
	}
	fmt.Printf("import: %d messages (%d conversations), %.1f MB in %.1f s: %.0f messages/s\n",
		cut.messages, answer.Imported, float64(cut.offset)/1e6, elapsed.Seconds(), float64(cut.messages)/elapsed.Seconds())
	return kv, nil
}

// lastLine returns the last line of the first size bytes of f.
func lastLine(f *os.File, size int64) (string, error) {
	const window = 4096
	from := max(size-window, 0)
	buf := make([]byte, size-from)
	if _, err := f.ReadAt(buf, from); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	buf = bytes.TrimRight(buf, "\n")
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[i+1:]
	}
	return string(buf), nil
}

// transferreport: the table of the transfer step.
func cmdTransferReport(args []string) error {
	fs := flag.NewFlagSet("transferreport", flag.ExitOnError)
	resultsFile := fs.String("results", "", "results file")
	fs.Parse(args)
	r, err := readResults(*resultsFile)
	if err != nil {
		return err
	}
	get := func(k string) string {
		if v, ok := r["transfer."+k]; ok && v != "" {
			return v
		}
		return "n/a"
	}
	mib := func(k string) string {
		v, err := strconv.ParseFloat(get(k), 64)
		if err != nil {
			return "n/a"
		}
		return fmt.Sprintf("%.1f", v/1024)
	}
	rate := func(k string) string {
		v, err := strconv.ParseFloat(get(k), 64)
		if err != nil {
			return "n/a"
		}
		return thousands(strconv.Itoa(int(v+0.5))) + " messages/s"
	}
	var b strings.Builder
	row := func(cells ...string) { fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | ")) }
	fmt.Fprintf(&b, "Export and import through the gateway (REST, one client, loopback): one user with %s messages "+
		"in %s conversations (seeded by SQL); the import takes the export's first %s MB (whole conversations) "+
		"into a fresh account. RSS from /proc VmRSS, sampled every 100 ms.\n\n",
		thousands(get("export.messages")), get("export.conversations"), mbOf(get("import.bytes")))
	row("measurement", "result", "detail")
	row("---", "---:", "---")
	cpu := func(p string) string {
		return fmt.Sprintf("; CPU %% of a core: message %s, gateway %s, PostgreSQL %s, tool %s, other %s",
			get(p+".cpu_message"), get(p+".cpu_gateway"), get(p+".cpu_postgres"), get(p+".cpu_tool"), get(p+".cpu_other"))
	}
	row("export (GET /v1/export, NDJSON)", rate("export.rate"),
		fmt.Sprintf("%s messages, %s MB in %s s", thousands(get("export.messages")), mbOf(get("export.bytes")),
			get("export.seconds"))+cpu("cpu_export"))
	row("import of our export (POST /v1/import)", rate("import.rate"),
		fmt.Sprintf("%s messages, %s conversations, %s MB in %s s", thousands(get("import.messages")),
			get("import.imported"), mbOf(get("import.bytes")), get("import.seconds"))+cpu("cpu_import"))
	label := map[string]string{"gateway": "gateway", "message": "message service"}
	for _, name := range []string{"gateway", "message"} {
		row("RSS of the "+label[name]+" during the export", mib("export.rss_peak_kib."+name)+" MiB peak",
			fmt.Sprintf("idle %s MiB, after a tenth of the messages %s MiB", mib("export.rss_idle_kib."+name),
				mib("export.rss_at10_kib."+name)))
	}
	for _, name := range []string{"gateway", "message"} {
		row("RSS of the "+label[name]+" during the import", mib("import.rss_peak_kib."+name)+" MiB peak",
			"idle "+mib("import.rss_idle_kib."+name)+" MiB")
	}
	fmt.Print(b.String())
	return nil
}

func mbOf(bytes string) string {
	v, err := strconv.ParseFloat(bytes, 64)
	if err != nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", v/1e6)
}
