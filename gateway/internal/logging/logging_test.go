package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestGRPCLoggerWritesJSONLines(t *testing.T) {
	var buf bytes.Buffer
	l := GRPCLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Errorf("Failed to write response: %v", "broken pipe")
	l.Warningln("slow", "peer")
	l.Info("state", " ", "READY")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []struct{ level, msg string }{
		{"ERROR", "Failed to write response: broken pipe"},
		{"WARN", "slow peer"},
		{"DEBUG", "state READY"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines: %s", len(lines), buf.String())
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if rec["level"] != want[i].level || rec["msg"] != want[i].msg || rec["component"] != "grpc" {
			t.Errorf("line %d = %v, want %+v", i, rec, want[i])
		}
	}
	if !l.V(0) || l.V(2) {
		t.Error("V: want only level 0 on")
	}
}
