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

type ghzReport struct {
	Count               uint64        `json:"count"`
	Total               time.Duration `json:"total"`
	LatencyDistribution []struct {
		Percentage int           `json:"percentage"`
		Latency    time.Duration `json:"latency"`
	} `json:"latencyDistribution"`
	StatusCodeDistribution map[string]int `json:"statusCodeDistribution"`
	ErrorDistribution      map[string]int `json:"errorDistribution"`
	Details                []struct {
		Latency time.Duration `json:"latency"`
		Status  string        `json:"status"`
	} `json:"details"`
}

// ghzsum summarises one ghz report, or several (-in a,b,...: the rounds
// of one measurement, taken in turn with others): calls and time add up,
// and the percentiles come from every successful call of every round.
func cmdGhzSum(args []string) error {
	fs := flag.NewFlagSet("ghzsum", flag.ExitOnError)
	in := fs.String("in", "", "ghz JSON report (-O json); several separated by commas")
	resultsFile := fs.String("results", "", "results file")
	prefix := fs.String("prefix", "", "key prefix")
	fs.Parse(args)
	var reps []ghzReport
	for _, file := range strings.Split(*in, ",") {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var rep ghzReport
		if err := json.Unmarshal(data, &rep); err != nil {
			return fmt.Errorf("%s: %v", file, err)
		}
		reps = append(reps, rep)
	}
	ok, count := 0, 0
	var total time.Duration
	statuses, errorsSeen := map[string]int{}, map[string]int{}
	var lat []time.Duration
	for _, rep := range reps {
		ok += rep.StatusCodeDistribution["OK"]
		count += int(rep.Count)
		total += rep.Total
		for code, n := range rep.StatusCodeDistribution {
			statuses[code] += n
		}
		for msg, n := range rep.ErrorDistribution {
			errorsSeen[msg] += n
		}
		for _, d := range rep.Details {
			if d.Status == "OK" {
				lat = append(lat, d.Latency)
			}
		}
	}
	kv := map[string]string{
		"ok":     strconv.Itoa(ok),
		"errors": strconv.Itoa(count - ok),
		"rate":   f2(float64(ok) / total.Seconds()),
	}
	if len(reps) == 1 {
		for _, l := range reps[0].LatencyDistribution {
			switch l.Percentage {
			case 50:
				kv["p50_ms"] = ms(l.Latency)
			case 99:
				kv["p99_ms"] = ms(l.Latency)
			}
		}
	} else {
		sortDurations(lat)
		kv["p50_ms"] = ms(percentile(lat, 50))
		kv["p99_ms"] = ms(percentile(lat, 99))
	}
	var details []string
	for code, n := range statuses {
		if code != "OK" {
			details = append(details, fmt.Sprintf("%s x%d", code, n))
		}
	}
	for msg, n := range errorsSeen {
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
	tpsRe       = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	processedRe = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	failedRe    = regexp.MustCompile(`number of failed transactions: (\d+)`)
	abortedRe   = regexp.MustCompile(`(?m)^.*client \d+ aborted.*$`)
)

// pgsum reads pgbench's standard output (tps, failed transactions, aborted
// clients) and its per-transaction logs (--log): latency percentiles from
// every transaction's time. Several runs (-stdout a,b,... -logs a,b,...:
// the rounds of one measurement) add up: the rate is all their
// transactions over all their time.
func cmdPgSum(args []string) error {
	fs := flag.NewFlagSet("pgsum", flag.ExitOnError)
	stdout := fs.String("stdout", "", "pgbench's standard output and error; several separated by commas")
	logPrefix := fs.String("logs", "", "--log-prefix of the run; several separated by commas")
	rc := fs.Int("rc", 0, "pgbench's exit status (the highest of the runs)")
	resultsFile := fs.String("results", "", "results file")
	prefix := fs.String("prefix", "", "key prefix")
	fs.Parse(args)
	var text string
	var txns, seconds float64
	for _, file := range strings.Split(*stdout, ",") {
		out, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		text += string(out)
		n, tps := processedRe.FindStringSubmatch(string(out)), tpsRe.FindStringSubmatch(string(out))
		if n != nil && tps != nil {
			count, _ := strconv.ParseFloat(n[1], 64)
			rate, _ := strconv.ParseFloat(tps[1], 64)
			if rate > 0 {
				txns += count
				seconds += count / rate
			}
		}
	}
	var files []string
	for _, p := range strings.Split(*logPrefix, ",") {
		matched, err := filepath.Glob(p + ".*")
		if err != nil {
			return err
		}
		if len(matched) == 0 {
			return fmt.Errorf("no pgbench log files %s.*; pgbench said:\n%s", p, text)
		}
		files = append(files, matched...)
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
	if seconds > 0 {
		kv["rate"] = f2(txns / seconds)
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

// cpumerge records, under -prefix, the mean of each cpu_* key of the
// -from prefixes: the CPU of a measurement taken in rounds of equal length.
func cmdCPUMerge(args []string) error {
	fs := flag.NewFlagSet("cpumerge", flag.ExitOnError)
	resultsFile := fs.String("results", "", "results file")
	prefix := fs.String("prefix", "", "key prefix to record")
	from := fs.String("from", "", "prefixes of the rounds, separated by commas")
	fs.Parse(args)
	r, err := readResults(*resultsFile)
	if err != nil {
		return err
	}
	kv, err := meanCPU(r, strings.Split(*from, ","))
	if err != nil {
		return err
	}
	return record(*resultsFile, *prefix, kv)
}

// meanCPU is the mean of each cpu_* key of the rounds' prefixes.
func meanCPU(r results, rounds []string) (map[string]string, error) {
	sums := map[string]float64{}
	for _, round := range rounds {
		for k, v := range r {
			key, ok := strings.CutPrefix(k, round+".")
			if !ok || !strings.HasPrefix(key, "cpu_") {
				continue
			}
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("%s=%s: %v", k, v, err)
			}
			sums[key] += n
		}
	}
	kv := map[string]string{}
	for key, sum := range sums {
		kv[key] = strconv.Itoa(int(sum/float64(len(rounds)) + 0.5))
	}
	return kv, nil
}

// roundsum records, under -prefix, one measurement taken in rounds of
// equal length, each already summarised under its own prefix (-from) by
// its tool's summary and by run: successful calls and errors add up, the
// rate is every round's successful calls over their time (a round's time
// is its calls over its rate), p50 is the median of the rounds' p50s and
// p99 the highest of their p99s, and each cpu_* key is the rounds' mean.
func cmdRoundSum(args []string) error {
	fs := flag.NewFlagSet("roundsum", flag.ExitOnError)
	resultsFile := fs.String("results", "", "results file")
	prefix := fs.String("prefix", "", "key prefix to record")
	from := fs.String("from", "", "prefixes of the rounds, separated by commas")
	fs.Parse(args)
	r, err := readResults(*resultsFile)
	if err != nil {
		return err
	}
	rounds := strings.Split(*from, ",")
	kv, err := meanCPU(r, rounds)
	if err != nil {
		return err
	}
	num := func(key string) (float64, error) {
		v, ok := r[key]
		if !ok {
			return 0, fmt.Errorf("roundsum: no %s in %s", key, *resultsFile)
		}
		return strconv.ParseFloat(v, 64)
	}
	var ok, errs, seconds float64
	var p50s []float64
	p99 := 0.0
	var details []string
	for _, round := range rounds {
		n, err := num(round + ".ok")
		if err != nil {
			return err
		}
		e, err := num(round + ".errors")
		if err != nil {
			return err
		}
		ok, errs = ok+n, errs+e
		if rate, err := num(round + ".rate"); err == nil && rate > 0 {
			seconds += n / rate
		}
		if p, err := num(round + ".p50_ms"); err == nil {
			p50s = append(p50s, p)
		}
		if p, err := num(round + ".p99_ms"); err == nil {
			p99 = max(p99, p)
		}
		if d := r[round+".error_detail"]; d != "" {
			details = append(details, round+": "+d)
		}
	}
	kv["ok"] = strconv.Itoa(int(ok))
	kv["errors"] = strconv.Itoa(int(errs))
	if seconds > 0 {
		kv["rate"] = f2(ok / seconds)
	}
	if len(p50s) > 0 {
		sort.Float64s(p50s)
		kv["p50_ms"] = strconv.FormatFloat(p50s[(len(p50s)-1)/2], 'f', 3, 64)
		kv["p99_ms"] = strconv.FormatFloat(p99, 'f', 3, 64)
	}
	if len(details) > 0 {
		kv["error_detail"] = strings.Join(details, "; ")
	}
	return record(*resultsFile, *prefix, kv)
}
