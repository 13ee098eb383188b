package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// h2load (nghttp2's HTTP/2 load tool, in C) calls a unary gRPC method as
// wrk calls a REST route: the same request again and again, its answer not
// decoded. The request is a gRPC message as it goes on the wire (grpcbody);
// h2load sees HTTP statuses only, so the gRPC status of every call is
// counted from the service's access log (-grpc-errors).

// cmdGrpcBody writes a serialized message as a gRPC request body: a 5-byte
// prefix (not compressed, the length) and the message.
func cmdGrpcBody(args []string) error {
	fs := flag.NewFlagSet("grpcbody", flag.ExitOnError)
	in := fs.String("in", "", "the serialized message (protoc --encode)")
	out := fs.String("out", "", "the request body to write")
	fs.Parse(args)
	message, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	body := make([]byte, 5, 5+len(message))
	binary.BigEndian.PutUint32(body[1:], uint32(len(message)))
	return os.WriteFile(*out, append(body, message...), 0o644)
}

var (
	h2RateRe     = regexp.MustCompile(`finished in [0-9.]+m?s, ([0-9.]+) req/s`)
	h2RequestsRe = regexp.MustCompile(`requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2StatusRe   = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	h2DataRe     = regexp.MustCompile(`traffic: .* \((\d+)\) data`)
)

// cmdH2Sum summarises h2load's standard output and its --log-file (one line
// a request: start in µs since the epoch, HTTP status, µs to its end; the
// measured requests only, not the warm-up's).
func cmdH2Sum(args []string) error {
	fs := flag.NewFlagSet("h2sum", flag.ExitOnError)
	stdout := fs.String("stdout", "", "h2load's standard output")
	logFile := fs.String("log", "", "h2load's --log-file")
	grpcErrors := fs.Int("grpc-errors", 0, "calls the service answered with a gRPC status other than OK")
	minBytes := fs.Int("min-bytes", 1, "fewest answer bytes a call averages for the run to count")
	rc := fs.Int("rc", 0, "h2load's exit status")
	resultsFile := fs.String("results", "", "results file")
	prefix := fs.String("prefix", "", "key prefix")
	fs.Parse(args)
	out, err := os.ReadFile(*stdout)
	if err != nil {
		return err
	}
	text := string(out)
	rate, requests, status, data := h2RateRe.FindStringSubmatch(text), h2RequestsRe.FindStringSubmatch(text),
		h2StatusRe.FindStringSubmatch(text), h2DataRe.FindStringSubmatch(text)
	if rate == nil || requests == nil || status == nil || data == nil {
		return fmt.Errorf("h2sum: no summary in %s (exit status %d): %.300s", *stdout, *rc, text)
	}
	n := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
	done := n(requests[2])
	failed := n(requests[4]) + n(requests[5]) + n(requests[6])
	non2xx := n(status[2]) + n(status[3]) + n(status[4])
	var details []string
	if failed > 0 {
		details = append(details, fmt.Sprintf("h2load: %s failed, %s errored, %s timeout", requests[4], requests[5], requests[6]))
	}
	if non2xx > 0 {
		details = append(details, fmt.Sprintf("HTTP status not 2xx: %d", int(non2xx)))
	}
	if *grpcErrors > 0 {
		details = append(details, fmt.Sprintf("gRPC status not OK (the service's log): %d", *grpcErrors))
	}
	if done > 0 && n(data[1])/done < float64(*minBytes) {
		details = append(details, fmt.Sprintf("answers of %.0f bytes on average (fewer than %d)", n(data[1])/done, *minBytes))
	}
	lat, err := h2Latencies(*logFile)
	if err != nil {
		return err
	}
	if len(lat) == 0 {
		return errors.New("h2sum: no request in " + *logFile)
	}
	bad := failed + non2xx + float64(*grpcErrors)
	ok := done - non2xx - float64(*grpcErrors)
	if ok < 0 {
		ok = 0
	}
	kv := map[string]string{
		"ok":     strconv.Itoa(int(ok)),
		"errors": strconv.Itoa(int(bad)),
		"rate":   f2(n(rate[1]) * ok / max(done, 1)),
		"p50_ms": ms(percentile(lat, 50)),
		"p99_ms": ms(percentile(lat, 99)),
	}
	if len(details) > 0 {
		kv["error_detail"] = strings.Join(details, "; ")
		if bad == 0 {
			kv["errors"] = "1" // only the bytes were short
		}
	}
	return record(*resultsFile, *prefix, kv)
}

func h2Latencies(path string) ([]time.Duration, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lat []time.Duration
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 3 {
			continue
		}
		us, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("h2sum: %s: %q", path, line)
		}
		lat = append(lat, time.Duration(us)*time.Microsecond)
	}
	sortDurations(lat)
	return lat, nil
}
