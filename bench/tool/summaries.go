package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Every summary records, under its prefix: rate (successful calls per
// second), p50_ms, p99_ms, ok (successful calls), errors (everything else:
// non-OK statuses, non-2xx answers, socket errors, failed or aborted
// transactions) and, when there were errors, error_detail.

func cmdGhzSum(args []string) error {
	fs := flag.NewFlagSet("ghzsum", flag.ExitOnError)
	in := fs.String("in", "", "ghz JSON report (-O json)")
	resultsFile := fs.String("results", "", "results file")
	prefix := fs.String("prefix", "", "key prefix")
	fs.Parse(args)
	data, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	var rep struct {
		Count               uint64        `json:"count"`
		Total               time.Duration `json:"total"`
		LatencyDistribution []struct {
			Percentage int           `json:"percentage"`
			Latency    time.Duration `json:"latency"`
		} `json:"latencyDistribution"`
		StatusCodeDistribution map[string]int `json:"statusCodeDistribution"`
		ErrorDistribution      map[string]int `json:"errorDistribution"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("%s: %v", *in, err)
	}
	ok := rep.StatusCodeDistribution["OK"]
	kv := map[string]string{
		"ok":     strconv.Itoa(ok),
		"errors": strconv.Itoa(int(rep.Count) - ok),
		"rate":   f2(float64(ok) / rep.Total.Seconds()),
	}
	for _, l := range rep.LatencyDistribution {
		switch l.Percentage {
		case 50:
			kv["p50_ms"] = ms(l.Latency)
		case 99:
			kv["p99_ms"] = ms(l.Latency)
		}
	}
	var details []string
	for code, n := range rep.StatusCodeDistribution {
		if code != "OK" {
			details = append(details, fmt.Sprintf("%s x%d", code, n))
		}
	}
	for msg, n := range rep.ErrorDistribution {
		details = append(details, fmt.Sprintf("%q x%d", msg, n))
	}
	if len(details) > 0 {
		sort.Strings(details)
		kv["error_detail"] = strings.Join(details, "; ")
	}
	return record(*resultsFile, *prefix, kv)
}

func cmdWrkSum(args []string) error {
	fs := flag.NewFlagSet("wrksum", flag.ExitOnError)
	in := fs.String("in", "", "key=value file written by bench/wrk/report.lua")
	resultsFile := fs.String("results", "", "results file")
	prefix := fs.String("prefix", "", "key prefix")
	fs.Parse(args)
	r, err := readResults(*in)
	if err != nil {
		return err
	}
	num := func(k string) float64 {
		v, err := strconv.ParseFloat(r[k], 64)
		if err != nil {
			return 0
		}
		return v
	}
	requests, status := num("requests"), num("err_status")
	socket := num("err_connect") + num("err_read") + num("err_write") + num("err_timeout")
	ok := requests - status
	kv := map[string]string{
		"ok":     strconv.Itoa(int(ok)),
		"errors": strconv.Itoa(int(status + socket)),
		"rate":   f2(ok / (num("duration_us") / 1e6)),
		"p50_ms": f2(num("p50_us") / 1000),
		"p99_ms": f2(num("p99_us") / 1000),
	}
	if status+socket > 0 {
		kv["error_detail"] = fmt.Sprintf("HTTP status >= 400: %d; connect %d, read %d, write %d, timeout %d",
			int(status), int(num("err_connect")), int(num("err_read")), int(num("err_write")),
			int(num("err_timeout")))
	}
	return record(*resultsFile, *prefix, kv)
}

var (
	tpsRe     = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	failedRe  = regexp.MustCompile(`number of failed transactions: (\d+)`)
	abortedRe = regexp.MustCompile(`(?m)^.*client \d+ aborted.*$`)
)

// pgsum reads pgbench's standard output (tps, failed transactions, aborted
// clients) and its per-transaction logs (--log): latency percentiles from
// every transaction's time.
func cmdPgSum(args []string) error {
	fs := flag.NewFlagSet("pgsum", flag.ExitOnError)
	stdout := fs.String("stdout", "", "pgbench's standard output and error")
	logPrefix := fs.String("logs", "", "--log-prefix of the run")
	rc := fs.Int("rc", 0, "pgbench's exit status")
	resultsFile := fs.String("results", "", "results file")
	prefix := fs.String("prefix", "", "key prefix")
	fs.Parse(args)
	out, err := os.ReadFile(*stdout)
	if err != nil {
		return err
	}
	text := string(out)
	files, err := filepath.Glob(*logPrefix + ".*")
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no pgbench log files %s.*; pgbench said:\n%s", *logPrefix, text)
	}
	var lat []time.Duration
	failed := 0
	for _, file := range files {
		lines, err := readLines(file)
		if err != nil {
			return err
		}
		for _, line := range lines {
			fields := strings.Fields(line)
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil { // "failed" or "skipped"
				failed++
				continue
			}
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
	}
	sortDurations(lat)
	kv := map[string]string{
		"ok":     strconv.Itoa(len(lat)),
		"p50_ms": ms(percentile(lat, 50)),
		"p99_ms": ms(percentile(lat, 99)),
	}
	if m := tpsRe.FindStringSubmatch(text); m != nil {
		kv["rate"] = m[1]
	}
	if m := failedRe.FindStringSubmatch(text); m != nil {
		if n, _ := strconv.Atoi(m[1]); n > failed {
			failed = n
		}
	}
	aborted := abortedRe.FindAllString(text, -1)
	errors := failed + len(aborted)
	if *rc != 0 && errors == 0 {
		errors = 1
	}
	kv["errors"] = strconv.Itoa(errors)
	if errors > 0 {
		detail := fmt.Sprintf("pgbench exit %d, %d failed transactions, %d aborted clients", *rc, failed, len(aborted))
		if len(aborted) > 0 {
			detail += ": " + aborted[0]
		}
		kv["error_detail"] = detail
	}
	return record(*resultsFile, *prefix, kv)
}
