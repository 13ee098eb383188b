package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procTicks is utime+stime of a process (and, with children, the time of its
// reaped children) in clock ticks; 0 when it is gone.
func procTicks(pid int, children bool) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; the fields after it do not.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
	var sum uint64
	last := 15
	if children {
		last = 17
	}
	for f := 14; f <= last; f++ {
		v, _ := strconv.ParseUint(fields[f-3], 10, 64)
		sum += v
	}
	return sum
}

func parentOf(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// postgresTicks counts the whole cluster: the postmaster with its reaped
// children (backends that ended, such as pgbench's) plus its live children,
// whose pids it returns too. The sum only grows once every backend that
// ended has been reaped, so two readings give the CPU time in between (see
// waitReaped).
// A child reaped between the reading of the postmaster's own line and the
// scan of its children would be in neither: the reading starts again when
// the postmaster's count moved meanwhile.
func postgresTicks(postmaster int) (uint64, map[int]bool) {
	for attempt := 0; ; attempt++ {
		own := procTicks(postmaster, true)
		sum := own
		children := map[int]bool{}
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, dir := range dirs {
			pid, err := strconv.Atoi(filepath.Base(dir))
			if err == nil && parentOf(pid) == postmaster {
				sum += procTicks(pid, false)
				children[pid] = true
			}
		}
		if procTicks(postmaster, true) == own || attempt == 10 {
			return sum, children
		}
	}
}

// waitReaped waits (at most a second) until the postmaster has no child
// that was not there before the load: a backend of the load tool that is
// still exiting, or a zombie not yet reaped, shows no CPU time in /proc,
// and it reaches the postmaster's own count only once reaped. Without the
// wait, a load whose connections end with it (pgbench) may lose its
// backends' CPU time entirely.
func waitReaped(postmaster int, before map[int]bool) uint64 {
	deadline := time.Now().Add(time.Second)
	for {
		ticks, children := postgresTicks(postmaster)
		settled := true
		for pid := range children {
			if !before[pid] {
				settled = false
				break
			}
		}
		if settled || time.Now().After(deadline) {
			return ticks
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// machineTicks: all ticks and busy ticks (everything but idle and iowait)
// summed over the CPUs, and the number of CPUs.
func machineTicks() (total, busy uint64, cpus int) {
	data, _ := os.ReadFile("/proc/stat")
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 6 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		if fields[0] != "cpu" {
			cpus++
			continue
		}
		for i, f := range fields[1:] {
			v, _ := strconv.ParseUint(f, 10, 64)
			if i >= 8 { // guest time is already in user time
				break
			}
			total += v
			if i != 3 && i != 4 {
				busy += v
			}
		}
	}
	return total, busy, cpus
}

type cpuReading struct {
	at           time.Time
	total, busy  uint64
	procs        map[string]uint64
	postgresTick uint64
	pgChildren   map[int]bool
}

func readCPU(pids map[string]int, postmaster int) cpuReading {
	r := cpuReading{at: time.Now(), procs: map[string]uint64{}}
	for name, pid := range pids {
		r.procs[name] = procTicks(pid, false)
	}
	if postmaster > 0 {
		r.postgresTick, r.pgChildren = postgresTicks(postmaster)
	}
	r.total, r.busy, _ = machineTicks()
	return r
}

func parsePids(spec string) (map[string]int, error) {
	pids := map[string]int{}
	for _, part := range strings.Split(spec, ",") {
		if part == "" {
			continue
		}
		name, pid, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil {
			return nil, fmt.Errorf("bad -pids element %q (want name=pid)", part)
		}
		pids[name] = n
	}
	return pids, nil
}

// run executes the command after "--" with the same standard streams and
// records, as percent of one CPU over its run: cpu_<name> for each process
// of -pids, cpu_postgres for the cluster, cpu_tool for the command itself
// (with its children), cpu_machine for all busy time and cpu_other for what
// none of these explain (other tenants of a shared machine). It exits with
// the command's status.
func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	pidSpec := fs.String("pids", "", "name=pid,... of the processes to watch")
	postmaster := fs.Int("postmaster", 0, "pid of the PostgreSQL postmaster")
	resultsFile := fs.String("results", "", "results file")
	prefix := fs.String("prefix", "", "key prefix")
	fs.Parse(args)
	command := fs.Args()
	if len(command) == 0 {
		return errors.New("no command after the flags")
	}
	pids, err := parsePids(*pidSpec)
	if err != nil {
		return err
	}
	_, _, cpus := machineTicks()
	before := readCPU(pids, *postmaster)
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	runErr := cmd.Run()
	after := readCPU(pids, *postmaster)
	if cmd.ProcessState == nil {
		return runErr
	}
	if *postmaster > 0 {
		// The elapsed time and the machine's counters stay those of the end
		// of the command.
		after.postgresTick = waitReaped(*postmaster, before.pgChildren)
	}

	elapsed := after.at.Sub(before.at).Seconds()
	// Ticks per second per CPU, from the machine's own counters (USER_HZ).
	hz := float64(after.total-before.total) / float64(cpus) / elapsed
	pct := func(ticks uint64) float64 { return float64(ticks) / hz / elapsed * 100 }
	kv := map[string]string{}
	explained := 0.0
	for name := range pids {
		p := pct(after.procs[name] - before.procs[name])
		if after.procs[name] < before.procs[name] {
			p = 0
		}
		kv["cpu_"+name] = strconv.Itoa(int(p + 0.5))
		explained += p
	}
	if *postmaster > 0 {
		p := pct(after.postgresTick - before.postgresTick)
		kv["cpu_postgres"] = strconv.Itoa(int(p + 0.5))
		explained += p
	}
	tool := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() / elapsed * 100
	kv["cpu_tool"] = strconv.Itoa(int(tool + 0.5))
	explained += tool
	machine := pct(after.busy - before.busy)
	kv["cpu_machine"] = strconv.Itoa(int(machine + 0.5))
	kv["cpu_cores"] = strconv.Itoa(cpus)
	other := machine - explained
	if other < 0 {
		other = 0
	}
	kv["cpu_other"] = strconv.Itoa(int(other + 0.5))
	if err := record(*resultsFile, *prefix, kv); err != nil {
		return err
	}
	os.Exit(cmd.ProcessState.ExitCode())
	return nil
}
