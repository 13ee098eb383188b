package k8s

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// repoRoot is the checkout this module sits in (deploy/k8s).
const repoRoot = "../.."

// The ports the manifests use (servicePorts, gatewayPort) are the defaults
// the programs listen on, read from their sources, so that a change of
// default cannot leave the manifests behind.
func TestDefaultPortsMatchSources(t *testing.T) {
	listenDefault := regexp.MustCompile(`(?:EnvOr|env)\("(?:GRPC_LISTEN|GATEWAY_LISTEN)",\s*"[^"]*:(\d+)"\)`)
	check := func(path string, want int32) {
		t.Helper()
		src, err := os.ReadFile(filepath.Join(repoRoot, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
		m := listenDefault.FindSubmatch(src)
		if m == nil {
			t.Errorf("%s: no default listen address found", path)
			return
		}
		if got, _ := strconv.Atoi(string(m[1])); int32(got) != want {
			t.Errorf("%s listens on %d by default; the manifests use %d", path, got, want)
		}
	}
	for name, port := range servicePorts {
		check(filepath.Join("services", name, "main.cc"), port)
	}
	check(filepath.Join("gateway", "internal", "config", "config.go"), gatewayPort)
}
