package k8s

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// container is one container of a workload with where it sits.
type container struct {
	W    workload
	C    *corev1.Container
	Init bool
}

func (c container) String() string {
	kind := "container"
	if c.Init {
		kind = "initContainer"
	}
	return c.W.String() + " " + kind + " " + c.C.Name
}

// sidecar: an init container with restartPolicy Always runs beside the
// main containers for the pod's whole life.
func (c container) sidecar() bool {
	return c.Init && c.C.RestartPolicy != nil && *c.C.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func containers(r *rendering) []container {
	var out []container
	for _, w := range r.Workloads {
		spec := &w.Template.Spec
		for i := range spec.InitContainers {
			out = append(out, container{w, &spec.InitContainers[i], true})
		}
		for i := range spec.Containers {
			out = append(out, container{w, &spec.Containers[i], false})
		}
	}
	return out
}

// Long-running containers have both probes. Job containers run to completion
// and need none; a plain init container must not have any (the API rejects
// probes there), a sidecar init container needs both.
func TestProbes(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendering) {
		for _, c := range containers(r) {
			hasProbes := c.C.LivenessProbe != nil || c.C.ReadinessProbe != nil || c.C.StartupProbe != nil
			switch {
			case c.Init && !c.sidecar():
				if hasProbes {
					t.Errorf("%s: probes on a run-to-completion init container are invalid", c)
				}
			case c.W.IsJob:
			default:
				if c.C.LivenessProbe == nil {
					t.Errorf("%s: no livenessProbe", c)
				}
				if c.C.ReadinessProbe == nil {
					t.Errorf("%s: no readinessProbe", c)
				}
			}
		}
	})
}

func TestResources(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendering) {
		for _, c := range containers(r) {
			for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := c.C.Resources.Requests[name]
				lim, hasLim := c.C.Resources.Limits[name]
				if !hasReq || req.IsZero() {
					t.Errorf("%s: no %s request", c, name)
				}
				if !hasLim || lim.IsZero() {
					t.Errorf("%s: no %s limit", c, name)
				}
				if hasReq && hasLim && req.Cmp(lim) > 0 {
					t.Errorf("%s: %s request %s above its limit %s", c, name, req.String(), lim.String())
				}
			}
		}
	})
}

// The restricted Pod Security Standard and a read-only root, for every
// container including init and Job containers.
func TestSecurityContext(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendering) {
		for _, c := range containers(r) {
			pod := c.W.Template.Spec.SecurityContext
			if pod == nil {
				pod = &corev1.PodSecurityContext{}
			}
			sc := c.C.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", c)
				continue
			}
			nonRoot := pod.RunAsNonRoot
			if sc.RunAsNonRoot != nil {
				nonRoot = sc.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				t.Errorf("%s: runAsNonRoot is not true", c)
			}
			uid := pod.RunAsUser
			if sc.RunAsUser != nil {
				uid = sc.RunAsUser
			}
			if uid == nil || *uid == 0 {
				t.Errorf("%s: no non-zero runAsUser", c)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem is not true", c)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", c)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", c)
			}
			if sc.Capabilities == nil || !dropsAll(sc.Capabilities.Drop) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: capabilities must drop ALL and add none", c)
			}
			seccomp := pod.SeccompProfile
			if sc.SeccompProfile != nil {
				seccomp = sc.SeccompProfile
			}
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccompProfile is not RuntimeDefault", c)
			}
		}
		for _, w := range r.Workloads {
			spec := w.Template.Spec
			if spec.HostNetwork || spec.HostPID || spec.HostIPC {
				t.Errorf("%s: shares a host namespace", w)
			}
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Errorf("%s: mounts a service account token it does not use", w)
			}
		}
	})
}

func dropsAll(caps []corev1.Capability) bool {
	for _, c := range caps {
		if c == "ALL" {
			return true
		}
	}
	return false
}

// Every image names a tag (or a digest), never latest.
func TestImagesPinned(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendering) {
		for _, c := range containers(r) {
			if err := checkImageRef(c.C.Image); err != "" {
				t.Errorf("%s: image %q: %s", c, c.C.Image, err)
			}
		}
	})
}

// checkImageRef returns why ref is not pinned, or "".
func checkImageRef(ref string) string {
	if ref == "" {
		return "empty"
	}
	if i := strings.Index(ref, "@"); i >= 0 {
		if !strings.HasPrefix(ref[i+1:], "sha256:") {
			return "digest is not sha256"
		}
		ref = ref[:i]
		if !strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") {
			return "" // pinned by digest alone
		}
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	i := strings.LastIndex(last, ":")
	if i < 0 {
		return "no tag"
	}
	if tag := last[i+1:]; tag == "" || tag == "latest" {
		return "tag " + tag + " is not a pinned version"
	}
	return ""
}

func TestCheckImageRef(t *testing.T) {
	for ref, wantOK := range map[string]bool{
		"ghcr.io/a/b:0.1.0":       true,
		"postgres:15.20-bookworm": true,
		"localhost:5000/a:1":      true,
		"a@sha256:abc":            true,
		"a:1@sha256:abc":          true,
		"ghcr.io/a/b":             false,
		"localhost:5000/a":        false,
		"a:latest":                false,
		"registry.example.com/a:": false,
		"a@md5:abc":               false,
		"":                        false,
	} {
		if got := checkImageRef(ref) == ""; got != wantOK {
			t.Errorf("checkImageRef(%q) ok = %v, want %v", ref, got, wantOK)
		}
	}
}

// A preStop pause, then SIGTERM and the service's drain: the grace period
// covers both, with the message service and the gateway (which relay
// streamed replies) draining for a minute or more.
func TestGracefulShutdown(t *testing.T) {
	longDrain := map[string]bool{"message": true, "gateway": true}
	forEachOverlay(t, func(t *testing.T, r *rendering) {
		for _, c := range containers(r) {
			if c.W.Kind != "Deployment" || c.Init {
				continue
			}
			drainText, ok := envLiteral(c.C, "DRAIN_TIMEOUT")
			if !ok {
				t.Errorf("%s: no DRAIN_TIMEOUT", c)
				continue
			}
			drain, err := time.ParseDuration(drainText)
			if err != nil {
				t.Errorf("%s: DRAIN_TIMEOUT %q: %v", c, drainText, err)
				continue
			}
			var pause time.Duration
			if l := c.C.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
				pause = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
			}
			if pause <= 0 {
				t.Errorf("%s: no preStop sleep", c)
			}
			grace := 30 * time.Second // the API's default
			if g := c.W.Template.Spec.TerminationGracePeriodSeconds; g != nil {
				grace = time.Duration(*g) * time.Second
			}
			if grace < pause+drain+5*time.Second {
				t.Errorf("%s: terminationGracePeriodSeconds %v does not cover preStop %v + drain %v + 5 s",
					c, grace, pause, drain)
			}
			if longDrain[c.W.Name] && drain < time.Minute {
				t.Errorf("%s: DRAIN_TIMEOUT %v is too short for streamed replies", c, drain)
			}
		}
	})
}

// Every Deployment is scaled by an HPA (and so sets no replicas of its own,
// which every apply would reset) and guarded by a PDB.
func TestAutoscalingAndDisruption(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendering) {
		scaled := map[string]bool{}
		for _, h := range r.HPAs {
			ref := h.Spec.ScaleTargetRef
			w, ok := r.workload(ref.Kind, ref.Name)
			if !ok {
				t.Errorf("HPA %s: target %s/%s does not exist", h.Name, ref.Kind, ref.Name)
				continue
			}
			scaled[w.String()] = true
			if w.Replicas != nil {
				t.Errorf("HPA %s: %s sets replicas, which each apply would reset", h.Name, w)
			}
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
				t.Errorf("HPA %s: bad replica bounds", h.Name)
			}
			if len(h.Spec.Metrics) == 0 {
				t.Errorf("HPA %s: no metrics", h.Name)
			}
			for _, m := range h.Spec.Metrics {
				if m.Resource == nil {
					continue
				}
				if _, ok := w.Template.Spec.Containers[0].Resources.Requests[m.Resource.Name]; !ok {
					t.Errorf("HPA %s: scales on %s, which %s does not request", h.Name, m.Resource.Name, w)
				}
			}
		}
		guarded := map[string]bool{}
		for _, p := range r.PDBs {
			matched := r.selectWorkloads(p.Namespace, p.Spec.Selector)
			if len(matched) == 0 {
				t.Errorf("PDB %s selects no workload", p.Name)
			}
			for _, w := range matched {
				guarded[w.String()] = true
			}
			if p.Spec.MinAvailable != nil {
				t.Errorf("PDB %s: use maxUnavailable, minAvailable blocks drains at one replica", p.Name)
			}
		}
		for _, w := range r.Workloads {
			if w.Kind != "Deployment" {
				continue
			}
			if !scaled[w.String()] {
				t.Errorf("%s: no HorizontalPodAutoscaler", w)
			}
			if !guarded[w.String()] {
				t.Errorf("%s: no PodDisruptionBudget", w)
			}
		}
	})
}

// envLiteral is the literal value of env var name in c.
func envLiteral(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

// The Ingress passes Server-Sent Events through as they are written and
// keeps a quiet stream open; every Ingress of an overlay serves one host.
func TestIngressStreaming(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendering) {
		hosts := map[string]bool{}
		streaming := false
		for _, ing := range r.Ingresses {
			for _, rule := range ing.Spec.Rules {
				hosts[rule.Host] = true
			}
			a := ing.Annotations
			if a["nginx.ingress.kubernetes.io/proxy-buffering"] != "off" {
				continue
			}
			if secs, err := time.ParseDuration(a["nginx.ingress.kubernetes.io/proxy-read-timeout"] + "s"); err != nil || secs < 10*time.Minute {
				t.Errorf("Ingress %s: proxy-read-timeout %q is shorter than a long reply", ing.Name,
					a["nginx.ingress.kubernetes.io/proxy-read-timeout"])
			}
			streaming = true
		}
		if !streaming {
			t.Error("no Ingress turns proxy buffering off for the streamed replies")
		}
		if len(hosts) != 1 {
			t.Errorf("the Ingresses serve hosts %v; want one", hosts)
		}
	})
}
