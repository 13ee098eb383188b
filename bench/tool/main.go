// Command benchtool is the part of bench/run.sh that is easier in Go than in
// bash: setting up a user and conversations through the gateway, page
// tokens, pgbench scripts made from the service's own SQL, summaries of the
// load tools' output, CPU accounting around a load run, a fake
// OpenAI-compatible provider, time-to-first-byte, open-streams and resume
// clients, and the final table. Standard library only, so building it needs no
// network.
package main

import (
	"bufio"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

var commands = map[string]struct {
	run  func(args []string) error
	help string
}{
	"ports":    {cmdPorts, "N: print N free loopback ports"},
	"setup":    {cmdSetup, "register a user and create conversations through the gateway"},
	"token":    {cmdToken, "print a page token (chat.internal.MessageCursor)"},
	"sql":      {cmdSQL, "print a SQL constant of a C++ source file"},
	"pgscript": {cmdPgScript, "write a pgbench script from the message service's SQL"},
	"ghzdata":  {cmdGhzData, "write ghz call data (a JSON array, used round-robin)"},
	"ghzsum":   {cmdGhzSum, "summarise a ghz JSON report into the results file"},
	"grpcload": {cmdGrpcLoad, "a closed-loop load of one unary gRPC method, answers not decoded"},
	"grpcbody": {cmdGrpcBody, "write a serialized message as a gRPC request body (for h2load)"},
	"h2sum":    {cmdH2Sum, "summarise h2load's output and --log-file into the results file"},
	"wrksum":   {cmdWrkSum, "summarise bench/wrk/report.lua's output into the results file"},
	"pgsum":    {cmdPgSum, "summarise pgbench's output and per-transaction logs"},
	"run":      {cmdRun, "run a load command and record the CPU time of the stack around it"},
	"cpumerge": {cmdCPUMerge, "record the mean CPU of the rounds of a measurement"},
	"roundsum": {cmdRoundSum, "record one measurement from its rounds' summaries"},
	"provider": {cmdProvider, "serve a fake OpenAI-compatible streaming provider"},
	"ttfb":     {cmdTTFB, "time to first byte of chat replies: provider direct and through the stack"},
	"streams":  {cmdStreams, "open many chat streams at once and read the processes' RSS"},
	"resume":   {cmdResume, "time to the first replayed delta when resuming a reply in progress"},
	"report":   {cmdReport, "print the markdown table of a results file"},
	// Export and import (issue 12): transfer.go.
	"transfer-setup": {cmdTransferSetup, "register a user with conversations to seed for the export"},
	"transfer":       {cmdTransfer, "time an export and an import through the gateway, with RSS"},
	"transferreport": {cmdTransferReport, "print the table of the export and import step"},
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("benchtool: ")
	if len(os.Args) < 2 || commands[os.Args[1]].run == nil {
		names := make([]string, 0, len(commands))
		for name := range commands {
			names = append(names, name)
		}
		sort.Strings(names)
		fmt.Fprintln(os.Stderr, "usage: benchtool COMMAND [flags]")
		for _, name := range names {
			fmt.Fprintf(os.Stderr, "  %-9s %s\n", name, commands[name].help)
		}
		os.Exit(2)
	}
	if err := commands[os.Args[1]].run(os.Args[2:]); err != nil {
		log.Fatalf("%s: %v", os.Args[1], err)
	}
}

// --- the results file: "key=value" lines, later lines win -----------------

type results map[string]string

func readResults(path string) (results, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := results{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			r[k] = v
		}
	}
	return r, sc.Err()
}

// record appends prefix.key=value lines to the results file.
func record(path, prefix string, kv map[string]string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w := bufio.NewWriter(f)
	for _, k := range keys {
		v := strings.NewReplacer("\n", " ", "\r", " ").Replace(kv[k])
		fmt.Fprintf(w, "%s.%s=%s\n", prefix, k, v)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func ms(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1000, 'f', 3, 64) }

func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return sorted[rank]
}

func sortDurations(d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
}

func readLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out, nil
}
