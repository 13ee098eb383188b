package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const h2loadStdout = `starting benchmark...
finished in 10.00s, 5199.70 req/s, 75.30MB/s
requests: 51997 total, 51997 started, 51997 done, 51997 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 51997 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 752.99MB (789570000) total, 152.33KB (155991) headers (space savings 96.29%), 751.26MB (787754800) data
`

// h2sum writes the run's rate, percentiles and failures; a call the
// service answered with another status than OK is a failure even though
// h2load saw HTTP 200, and so are answers too short to be pages.
func TestH2SumCountsWhatH2loadCannotSee(t *testing.T) {
	dir := t.TempDir()
	stdout := filepath.Join(dir, "out.txt")
	logFile := filepath.Join(dir, "h2.log")
	resultsFile := filepath.Join(dir, "results")
	if err := os.WriteFile(stdout, []byte(h2loadStdout), 0o644); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	for i := 1; i <= 100; i++ { // 1 to 100 ms
		log.WriteString("1796424662590191\t200\t" + strconv.Itoa(i*1000) + "\n")
	}
	if err := os.WriteFile(logFile, []byte(log.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := func(prefix string, extra ...string) results {
		t.Helper()
		args := append([]string{"-stdout", stdout, "-log", logFile, "-results", resultsFile, "-prefix", prefix}, extra...)
		if err := cmdH2Sum(args); err != nil {
			t.Fatal(err)
		}
		r, err := readResults(resultsFile)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	r := sum("clean", "-min-bytes", "1000")
	if r["clean.rate"] != "5199.70" || r["clean.errors"] != "0" || r["clean.ok"] != "51997" {
		t.Errorf("clean run: rate %s, errors %s, ok %s", r["clean.rate"], r["clean.errors"], r["clean.ok"])
	}
	if r["clean.p50_ms"] != "50.000" || r["clean.p99_ms"] != "99.000" {
		t.Errorf("percentiles: p50 %s, p99 %s", r["clean.p50_ms"], r["clean.p99_ms"])
	}

	r = sum("grpc", "-grpc-errors", "997")
	if r["grpc.errors"] != "997" || r["grpc.ok"] != "51000" || !strings.Contains(r["grpc.error_detail"], "gRPC status") {
		t.Errorf("gRPC failures: errors %s, ok %s, detail %q", r["grpc.errors"], r["grpc.ok"], r["grpc.error_detail"])
	}
	if rate, _ := strconv.ParseFloat(r["grpc.rate"], 64); rate > 5100 { // the failed calls do not count
		t.Errorf("gRPC failures: rate %s", r["grpc.rate"])
	}

	r = sum("short", "-min-bytes", "20000") // the answers average 15,150 bytes
	if r["short.errors"] == "0" || !strings.Contains(r["short.error_detail"], "fewer than 20000") {
		t.Errorf("short answers: errors %s, detail %q", r["short.errors"], r["short.error_detail"])
	}
}
