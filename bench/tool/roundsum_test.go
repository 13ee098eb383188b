package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// roundsum adds up the rounds of one measurement: the rate is all their
// calls over all their time (not the mean of their rates), p50 the rounds'
// median, p99 their highest, CPU their mean, errors their sum.
func TestRoundSumAddsUpTheRounds(t *testing.T) {
	resultsFile := filepath.Join(t.TempDir(), "results")
	rounds := `list1.rest.r1.ok=10000
list1.rest.r1.errors=0
list1.rest.r1.rate=1000.00
list1.rest.r1.p50_ms=4.000
list1.rest.r1.p99_ms=9.000
list1.rest.r1.cpu_gateway=50
list1.rest.r2.ok=30000
list1.rest.r2.errors=2
list1.rest.r2.rate=3000.00
list1.rest.r2.p50_ms=2.000
list1.rest.r2.p99_ms=12.000
list1.rest.r2.cpu_gateway=70
list1.rest.r2.error_detail=HTTP status >= 400: 2
list1.rest.r3.ok=20000
list1.rest.r3.errors=0
list1.rest.r3.rate=4000.00
list1.rest.r3.p50_ms=3.000
list1.rest.r3.p99_ms=7.000
list1.rest.r3.cpu_gateway=61
`
	if err := os.WriteFile(resultsFile, []byte(rounds), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmdRoundSum([]string{"-results", resultsFile, "-prefix", "list1.rest",
		"-from", "list1.rest.r1,list1.rest.r2,list1.rest.r3"}); err != nil {
		t.Fatal(err)
	}
	r, err := readResults(resultsFile)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ok":     "60000",
		"errors": "2",
		"rate":   "2400.00", // 60,000 calls in 10 + 10 + 5 s (their mean rate: 2,666.67)
		"p50_ms": "3.000",
		"p99_ms": "12.000",
		// (50 + 70 + 61) / 3
		"cpu_gateway": "60",
	}
	for k, v := range want {
		if got := r["list1.rest."+k]; got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if d := r["list1.rest.error_detail"]; !strings.Contains(d, "list1.rest.r2: HTTP status >= 400: 2") {
		t.Errorf("error_detail = %q", d)
	}

	// A round that was not summarised is an error, not a smaller sum.
	if err := cmdRoundSum([]string{"-results", resultsFile, "-prefix", "x",
		"-from", "list1.rest.r1,list1.rest.r4"}); err == nil {
		t.Error("roundsum accepted a round with no results")
	}
}
