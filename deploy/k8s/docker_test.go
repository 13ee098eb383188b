package k8s

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// No Docker engine is needed to check what the Dockerfile promises: pinned
// base images, the five targets, a numeric non-root user in each, the ports
// the manifests use, build inputs that exist in the checkout, and image
// names that match the overlays.

const dockerfilePath = "../docker/Dockerfile"

// stage is one FROM of the Dockerfile with what it sets (inherited from its
// base when that is an earlier stage).
type stage struct {
	Name, Base string
	User       string
	Env        map[string]string
	Expose     []string
	Entrypoint string
	Copies     []copyInstr
}

type copyInstr struct {
	From, Src, Dest string
}

// parseDockerfile understands the instructions this Dockerfile uses.
func parseDockerfile(t *testing.T, data []byte) (stages []*stage, byName map[string]*stage) {
	t.Helper()
	byName = map[string]*stage{}
	args := map[string]string{}
	expand := func(s string) string {
		return os.Expand(s, func(k string) string { return args[k] })
	}
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	var st *stage
	for _, line := range lines {
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			if st == nil {
				args[k] = v
			}
		case "FROM":
			f := strings.Fields(rest)
			st = &stage{Base: expand(f[0]), Env: map[string]string{}}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.Name = f[2]
			}
			if base, ok := byName[st.Base]; ok {
				st.User = base.User
				for k, v := range base.Env {
					st.Env[k] = v
				}
				st.Expose = append(st.Expose, base.Expose...)
				st.Entrypoint = base.Entrypoint
			}
			stages = append(stages, st)
			if st.Name != "" {
				byName[st.Name] = st
			}
		case "USER":
			st.User = rest
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					st.Env[k] = strings.Trim(v, `"`)
				}
			}
		case "EXPOSE":
			st.Expose = append(st.Expose, strings.Fields(rest)...)
		case "ENTRYPOINT":
			st.Entrypoint = rest
		case "COPY", "ADD":
			f := strings.Fields(rest)
			var from string
			var paths []string
			for _, x := range f {
				if v, ok := strings.CutPrefix(x, "--from="); ok {
					from = v
				} else if !strings.HasPrefix(x, "--") {
					paths = append(paths, x)
				}
			}
			if len(paths) < 2 {
				t.Errorf("Dockerfile: cannot parse %q", line)
				continue
			}
			for _, src := range paths[:len(paths)-1] {
				st.Copies = append(st.Copies, copyInstr{from, src, paths[len(paths)-1]})
			}
		}
	}
	return stages, byName
}

// dockerTargets maps each image target to the listen variable it sets and
// the port.
var dockerTargets = map[string]struct {
	env  string
	port int32
}{
	"auth":         {"GRPC_LISTEN", servicePorts["auth"]},
	"conversation": {"GRPC_LISTEN", servicePorts["conversation"]},
	"message":      {"GRPC_LISTEN", servicePorts["message"]},
	"gateway":      {"GATEWAY_LISTEN", gatewayPort},
	"migrate":      {},
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	stages, byName := parseDockerfile(t, data)
	ignored := dockerignore(t)

	seen := map[string]bool{}
	for _, st := range stages {
		if _, isStage := byName[st.Base]; !isStage && st.Base != "scratch" {
			if why := checkImageRef(st.Base); why != "" {
				t.Errorf("stage %s: base image %q: %s", st.Name, st.Base, why)
			}
		}
		for _, c := range st.Copies {
			if c.From != "" {
				if !seen[c.From] {
					t.Errorf("stage %s: COPY --from=%s names no earlier stage", st.Name, c.From)
				}
				continue
			}
			matches, _ := filepath.Glob(filepath.Join(repoRoot, c.Src))
			if len(matches) == 0 {
				t.Errorf("stage %s: COPY %s: no such path in the checkout", st.Name, c.Src)
			}
			for _, pattern := range ignored {
				if ok, _ := filepath.Match(pattern, c.Src); ok || c.Src == pattern {
					t.Errorf("stage %s: COPY %s, which the .dockerignore excludes", st.Name, c.Src)
				}
			}
		}
		seen[st.Name] = true
	}

	for name, want := range dockerTargets {
		st, ok := byName[name]
		if !ok {
			t.Errorf("no target %s", name)
			continue
		}
		uid, gid, ok := strings.Cut(st.User, ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("target %s: USER %q is not a numeric non-root uid", name, st.User)
		} else if _, err := strconv.Atoi(gid); ok && err != nil {
			t.Errorf("target %s: USER %q has a non-numeric group", name, st.User)
		}
		if !strings.HasPrefix(st.Entrypoint, "[") {
			t.Errorf("target %s: ENTRYPOINT %q is not in exec form, so SIGTERM would not reach the program", name, st.Entrypoint)
		}
		if want.env != "" {
			_, port, err := net.SplitHostPort(st.Env[want.env])
			if err != nil || port != strconv.Itoa(int(want.port)) {
				t.Errorf("target %s: %s=%q, want port %d", name, want.env, st.Env[want.env], want.port)
			}
			if len(st.Expose) != 1 || st.Expose[0] != strconv.Itoa(int(want.port)) {
				t.Errorf("target %s: EXPOSE %v, want %d", name, st.Expose, want.port)
			}
		}
	}

	// The migration image carries the SQL where MIGRATIONS_DIR says, and
	// the Job says the same.
	if m, ok := byName["migrate"]; ok {
		dir := m.Env["MIGRATIONS_DIR"]
		found := false
		for _, c := range m.Copies {
			if c.Src == "deploy/migrations" && strings.TrimSuffix(c.Dest, "/") == dir {
				found = true
			}
		}
		if !found {
			t.Errorf("target migrate: deploy/migrations is not copied to MIGRATIONS_DIR %q", dir)
		}
		for _, name := range overlayDirs(t) {
			if w, ok := render(t, name).workload("Job", "chat-migrate"); ok {
				if got, _ := envLiteral(&w.Template.Spec.Containers[0], "MIGRATIONS_DIR"); got != dir {
					t.Errorf("overlays/%s: the Job's MIGRATIONS_DIR %q is not the image's %q", name, got, dir)
				}
			}
		}
	}
}

// dockerignore returns the patterns of deploy/docker/Dockerfile.dockerignore.
func dockerignore(t *testing.T) []string {
	data, err := os.ReadFile(dockerfilePath + ".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "!") {
			out = append(out, line)
		}
	}
	return out
}

// The bake file builds every target under the names the overlays deploy.
func TestBakeMatchesOverlays(t *testing.T) {
	data, err := os.ReadFile("../docker/docker-bake.hcl")
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	registry := regexp.MustCompile(`variable "REGISTRY" \{\s*default = "([^"]+)"`).FindStringSubmatch(src)
	if registry == nil {
		t.Fatal("docker-bake.hcl: no REGISTRY default")
	}
	built := map[string]bool{}
	for _, m := range regexp.MustCompile(`target\s*=\s*"([^"]+)"\s*\n\s*tags\s*=\s*\["\$\{REGISTRY\}/([^:"]+):\$\{TAG\}"\]`).
		FindAllStringSubmatch(src, -1) {
		if _, ok := dockerTargets[m[1]]; !ok {
			t.Errorf("docker-bake.hcl: target %s is not a Dockerfile target", m[1])
		}
		built[registry[1]+"/"+m[2]] = true
	}
	if len(built) != len(dockerTargets) {
		t.Errorf("docker-bake.hcl builds %d images, the Dockerfile has %d targets", len(built), len(dockerTargets))
	}
	for _, name := range overlayDirs(t) {
		for _, c := range containers(render(t, name)) {
			image := c.C.Image
			if i := strings.IndexAny(image[strings.LastIndex(image, "/")+1:], ":@"); i >= 0 {
				image = image[:strings.LastIndex(image, "/")+1+i]
			}
			if strings.HasPrefix(image, registry[1]+"/") && !built[image] {
				t.Errorf("overlays/%s: %s runs %s, which docker-bake.hcl does not build", name, c, image)
			}
		}
	}
}
