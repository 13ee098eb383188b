package k8s

import (
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The gRPC port of each service and the gateway's HTTP port: the defaults
// the binaries listen on (TestDefaultPortsMatchSources reads them from the
// sources), which the manifests must use too.
var servicePorts = map[string]int32{
	"auth":         50051,
	"conversation": 50052,
	"message":      50053,
}

const gatewayPort int32 = 8080

// selectWorkloads lists the workloads in namespace whose pods sel selects.
func (r *rendering) selectWorkloads(namespace string, sel *metav1.LabelSelector) []workload {
	if sel == nil {
		return nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil
	}
	var out []workload
	for _, w := range r.Workloads {
		if w.Namespace == namespace && s.Matches(labels.Set(w.Template.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

// selectedBy lists the workloads a Service's selector picks.
func (r *rendering) selectedBy(svc *corev1.Service) []workload {
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	return r.selectWorkloads(svc.Namespace, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
}

// containerPort resolves a Service's targetPort (a number or a port name)
// against the containers of w; 0 when no container exposes it.
func containerPort(w workload, target intstr.IntOrString, protocol corev1.Protocol) int32 {
	if protocol == "" {
		protocol = corev1.ProtocolTCP
	}
	for _, c := range w.Template.Spec.Containers {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if pp != protocol {
				continue
			}
			if (target.Type == intstr.Int && p.ContainerPort == target.IntVal) ||
				(target.Type == intstr.String && p.Name == target.StrVal) {
				return p.ContainerPort
			}
		}
	}
	return 0
}

func targetPortOf(p corev1.ServicePort) intstr.IntOrString {
	if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
		return intstr.FromInt32(p.Port) // unset: same as port
	}
	return p.TargetPort
}

// Every Service selects pods, and each of its ports reaches a port that
// every selected pod's containers declare. Behind a headless Service the
// clients dial the pods' addresses with the Service's port, so there the
// two numbers must be equal.
func TestServiceTargetPorts(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendering) {
		for _, svc := range sortedValues(r.Services) {
			selected := r.selectedBy(svc)
			if len(selected) == 0 {
				t.Errorf("Service %s selects no pods", svc.Name)
				continue
			}
			for _, p := range svc.Spec.Ports {
				target := targetPortOf(p)
				for _, w := range selected {
					got := containerPort(w, target, p.Protocol)
					if got == 0 {
						t.Errorf("Service %s port %s: targetPort %s is no container port of %s",
							svc.Name, p.Name, target.String(), w)
					} else if svc.Spec.ClusterIP == corev1.ClusterIPNone && got != p.Port {
						t.Errorf("headless Service %s: port %d but the pods listen on %d",
							svc.Name, p.Port, got)
					}
				}
			}
		}
	})
}

// The ports in the manifests are the services' defaults: the Service, the
// container port, the listen address the container is given and its probes.
func TestPortsMatchServiceDefaults(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendering) {
		for name, port := range servicePorts {
			checkServing(t, r, name, "grpc", port, "GRPC_LISTEN")
			w, ok := r.workload("Deployment", name)
			if !ok {
				continue
			}
			c := &w.Template.Spec.Containers[0]
			if p := c.ReadinessProbe; p == nil || p.GRPC == nil || p.GRPC.Port != port {
				t.Errorf("%s: readinessProbe is not a native gRPC probe on %d", w, port)
			} else if p.GRPC.Service != nil && *p.GRPC.Service != "" {
				t.Errorf("%s: readinessProbe must check the overall status (service \"\")", w)
			}
			if p := c.LivenessProbe; p != nil && p.GRPC != nil && p.GRPC.Port != port {
				t.Errorf("%s: livenessProbe on port %d, not %d", w, p.GRPC.Port, port)
			}
			if p := c.LivenessProbe; p != nil && p.TCPSocket != nil &&
				containerPort(w, p.TCPSocket.Port, corev1.ProtocolTCP) != port {
				t.Errorf("%s: livenessProbe on %s, not %d", w, p.TCPSocket.Port.String(), port)
			}
		}
		checkServing(t, r, "gateway", "http", gatewayPort, "GATEWAY_LISTEN")
		if w, ok := r.workload("Deployment", "gateway"); ok {
			c := &w.Template.Spec.Containers[0]
			for probe, want := range map[*corev1.Probe]string{
				c.LivenessProbe:  "/healthz",
				c.ReadinessProbe: "/readyz",
			} {
				if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want ||
					containerPort(w, probe.HTTPGet.Port, corev1.ProtocolTCP) != gatewayPort {
					t.Errorf("%s: wants an HTTP probe of %s on %d", w, want, gatewayPort)
				}
			}
		}
	})
}

func checkServing(t *testing.T, r *rendering, name, portName string, port int32, listenEnv string) {
	t.Helper()
	w, ok := r.workload("Deployment", name)
	if !ok {
		t.Errorf("no Deployment %s", name)
		return
	}
	c := &w.Template.Spec.Containers[0]
	found := false
	for _, p := range c.Ports {
		if p.Name == portName {
			found = true
			if p.ContainerPort != port {
				t.Errorf("%s: container port %s is %d, want %d", w, portName, p.ContainerPort, port)
			}
		}
	}
	if !found {
		t.Errorf("%s: no container port named %s", w, portName)
	}
	if listen, ok := envLiteral(c, listenEnv); !ok {
		t.Errorf("%s: no %s", w, listenEnv)
	} else if _, p, err := net.SplitHostPort(listen); err != nil || p != strconv.Itoa(int(port)) {
		t.Errorf("%s: %s=%q, want port %d", w, listenEnv, listen, port)
	}
	svc, ok := r.Services[key(w.Namespace, name)]
	if !ok {
		t.Errorf("no Service %s", name)
		return
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != port || svc.Spec.Ports[0].Name != portName {
		t.Errorf("Service %s: want the one port %s %d, have %+v", name, portName, port, svc.Spec.Ports)
	}
	if portName == "grpc" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service %s: not headless, so gRPC clients cannot balance over its pods", name)
	}
}

// Everything a pod names exists in the same rendering: ConfigMaps and
// Secrets (with the keys it reads), ServiceAccounts, the governing Service
// of a StatefulSet, the Services and ports behind the Ingress, and the
// Services behind every address the pods are configured with.
func TestReferencesExist(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendering) {
		for _, w := range r.Workloads {
			checkPodReferences(t, r, w)
		}
		for _, ing := range r.Ingresses {
			var backends []string
			if b := ing.Spec.DefaultBackend; b != nil && b.Service != nil {
				checkBackend(t, r, ing.Namespace, ing.Name, b.Service.Name, b.Service.Port)
				backends = append(backends, b.Service.Name)
			}
			for _, rule := range ing.Spec.Rules {
				if rule.HTTP == nil {
					continue
				}
				for _, p := range rule.HTTP.Paths {
					if p.Backend.Service == nil {
						t.Errorf("Ingress %s path %s: no Service backend", ing.Name, p.Path)
						continue
					}
					checkBackend(t, r, ing.Namespace, ing.Name, p.Backend.Service.Name, p.Backend.Service.Port)
					backends = append(backends, p.Backend.Service.Name)
				}
			}
			if len(backends) == 0 {
				t.Errorf("Ingress %s has no backend", ing.Name)
			}
			// A TLS Secret is issued by cert-manager when the Ingress asks
			// for it; otherwise it must be part of the rendering.
			_, issuer := ing.Annotations["cert-manager.io/cluster-issuer"]
			_, nsIssuer := ing.Annotations["cert-manager.io/issuer"]
			for _, tls := range ing.Spec.TLS {
				if _, ok := r.Secrets[key(ing.Namespace, tls.SecretName)]; !ok && !issuer && !nsIssuer {
					t.Errorf("Ingress %s: TLS Secret %s does not exist and no issuer makes it", ing.Name, tls.SecretName)
				}
			}
		}
		for _, w := range r.Workloads {
			for _, ep := range r.endpoints(w) {
				if !ep.InCluster {
					continue
				}
				svc, ok := r.Services[key(ep.Namespace, ep.Service)]
				if !ok {
					t.Errorf("%s: %s names Service %s/%s, which does not exist", w, ep.From, ep.Namespace, ep.Service)
					continue
				}
				if servicePort(svc, ep.Port) == nil {
					t.Errorf("%s: %s names port %d of Service %s, which has no such port", w, ep.From, ep.Port, ep.Service)
				}
			}
		}
	})
}

func checkBackend(t *testing.T, r *rendering, namespace, ingress, name string, port networkingv1.ServiceBackendPort) {
	t.Helper()
	svc, ok := r.Services[key(namespace, name)]
	if !ok {
		t.Errorf("Ingress %s: backend Service %s does not exist", ingress, name)
		return
	}
	for _, p := range svc.Spec.Ports {
		if (port.Name != "" && p.Name == port.Name) || (port.Name == "" && p.Port == port.Number) {
			return
		}
	}
	t.Errorf("Ingress %s: Service %s has no port %q/%d", ingress, name, port.Name, port.Number)
}

func servicePort(svc *corev1.Service, port int32) *corev1.ServicePort {
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == port {
			return &svc.Spec.Ports[i]
		}
	}
	return nil
}

func checkPodReferences(t *testing.T, r *rendering, w workload) {
	t.Helper()
	spec := &w.Template.Spec
	ns := w.Namespace
	if sa := spec.ServiceAccountName; sa != "" && sa != "default" {
		if _, ok := r.ServiceAccounts[key(ns, sa)]; !ok {
			t.Errorf("%s: ServiceAccount %s does not exist", w, sa)
		}
	}
	for _, s := range spec.ImagePullSecrets {
		if _, ok := r.Secrets[key(ns, s.Name)]; !ok {
			t.Errorf("%s: imagePullSecret %s does not exist", w, s.Name)
		}
	}
	if w.Kind == "StatefulSet" {
		svc, ok := r.Services[key(ns, w.ServiceName)]
		if !ok {
			t.Errorf("%s: governing Service %q does not exist", w, w.ServiceName)
		} else if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("%s: governing Service %s is not headless", w, w.ServiceName)
		}
	}
	var all []corev1.Container
	all = append(all, spec.InitContainers...)
	all = append(all, spec.Containers...)
	for _, c := range all {
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
				r.checkKey(t, w, "ConfigMap", ref.Name, ref.Key, ref.Optional, "env "+e.Name)
			}
			if ref := e.ValueFrom.SecretKeyRef; ref != nil {
				r.checkKey(t, w, "Secret", ref.Name, ref.Key, ref.Optional, "env "+e.Name)
			}
		}
		for _, ef := range c.EnvFrom {
			if ref := ef.ConfigMapRef; ref != nil {
				r.checkKey(t, w, "ConfigMap", ref.Name, "", ref.Optional, "envFrom")
			}
			if ref := ef.SecretRef; ref != nil {
				r.checkKey(t, w, "Secret", ref.Name, "", ref.Optional, "envFrom")
			}
		}
		mounted := map[string]bool{}
		for _, m := range c.VolumeMounts {
			mounted[m.Name] = true
		}
		r.checkFileReferences(t, w, c)
		for name := range mounted {
			if !hasVolume(spec, name) && !contains(w.Claims, name) {
				t.Errorf("%s container %s: mounts volume %s, which the pod does not declare", w, c.Name, name)
			}
		}
	}
	for _, v := range spec.Volumes {
		if s := v.Secret; s != nil {
			r.checkKey(t, w, "Secret", s.SecretName, "", s.Optional, "volume "+v.Name)
			for _, it := range s.Items {
				r.checkKey(t, w, "Secret", s.SecretName, it.Key, s.Optional, "volume "+v.Name)
			}
		}
		if cm := v.ConfigMap; cm != nil {
			r.checkKey(t, w, "ConfigMap", cm.Name, "", cm.Optional, "volume "+v.Name)
			for _, it := range cm.Items {
				r.checkKey(t, w, "ConfigMap", cm.Name, it.Key, cm.Optional, "volume "+v.Name)
			}
		}
		if p := v.Projected; p != nil {
			for _, src := range p.Sources {
				if s := src.Secret; s != nil {
					r.checkKey(t, w, "Secret", s.Name, "", s.Optional, "volume "+v.Name)
				}
				if cm := src.ConfigMap; cm != nil {
					r.checkKey(t, w, "ConfigMap", cm.Name, "", cm.Optional, "volume "+v.Name)
				}
			}
		}
	}
}

// checkFileReferences: a path in an env value (DATABASE_URL_FILE=..., or
// each of a comma-separated list) that lies in a mounted Secret or ConfigMap
// must name one of its keys, or the program finds no file there.
func (r *rendering) checkFileReferences(t *testing.T, w workload, c corev1.Container) {
	t.Helper()
	for _, e := range c.Env {
		value := e.Value
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			if cm, ok := r.ConfigMaps[key(w.Namespace, e.ValueFrom.ConfigMapKeyRef.Name)]; ok {
				value = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
			}
		}
		for _, path := range strings.Split(value, ",") {
			path = strings.TrimSpace(path)
			if !strings.HasPrefix(path, "/") {
				continue
			}
			for _, m := range c.VolumeMounts {
				dir := strings.TrimSuffix(m.MountPath, "/") + "/"
				file, ok := strings.CutPrefix(path, dir)
				if !ok {
					continue
				}
				for _, v := range w.Template.Spec.Volumes {
					if v.Name != m.Name {
						continue
					}
					what := "env " + e.Name + " (" + path + ")"
					switch {
					case v.Secret != nil:
						r.checkKey(t, w, "Secret", v.Secret.SecretName, itemKey(v.Secret.Items, file), v.Secret.Optional, what)
					case v.ConfigMap != nil:
						r.checkKey(t, w, "ConfigMap", v.ConfigMap.Name, itemKey(v.ConfigMap.Items, file), v.ConfigMap.Optional, what)
					}
				}
			}
		}
	}
}

// itemKey maps a file name in a Secret or ConfigMap volume to its key.
func itemKey(items []corev1.KeyToPath, file string) string {
	if len(items) == 0 {
		return file
	}
	for _, it := range items {
		if it.Path == file {
			return it.Key
		}
	}
	return "(no item has path " + file + ")"
}

func hasVolume(spec *corev1.PodSpec, name string) bool {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

// checkKey reports a missing ConfigMap or Secret, or a missing key in it
// (key "" checks only that the object exists), unless the reference is
// optional.
func (r *rendering) checkKey(t *testing.T, w workload, kind, name, k string, optional *bool, what string) {
	t.Helper()
	if optional != nil && *optional {
		return
	}
	var keys map[string]bool
	switch kind {
	case "ConfigMap":
		cm, ok := r.ConfigMaps[key(w.Namespace, name)]
		if !ok {
			t.Errorf("%s %s: ConfigMap %s does not exist", w, what, name)
			return
		}
		keys = keysOf(cm.Data, cm.BinaryData)
	case "Secret":
		s, ok := r.Secrets[key(w.Namespace, name)]
		if !ok {
			t.Errorf("%s %s: Secret %s does not exist", w, what, name)
			return
		}
		keys = keysOf(s.StringData, s.Data)
	}
	if k != "" && !keys[k] {
		t.Errorf("%s %s: %s %s has no key %s", w, what, kind, name, k)
	}
}

func keysOf(str map[string]string, bin map[string][]byte) map[string]bool {
	out := map[string]bool{}
	for k := range str {
		out[k] = true
	}
	for k := range bin {
		out[k] = true
	}
	return out
}

// endpoint is an address a pod is configured to connect to.
type endpoint struct {
	From      string // where the address was found, for messages
	Host      string
	Port      int32
	InCluster bool
	Service   string // when InCluster
	Namespace string // when InCluster
}

// endpoints collects the addresses that w's containers are given: env vars
// named *_ADDR (gRPC targets such as auth:50051 or dns:///auth:50051), and
// URLs (postgres://, https://...) in env vars and in ConfigMap and Secret
// keys whose names say URL (DATABASE_URL, PROVIDER_BASE_URL, url), whether
// the pod reads them as env vars or mounts them as files. (Not every URL is
// an address: CORS_ALLOWED_ORIGINS is not.)
func (r *rendering) endpoints(w workload) []endpoint {
	var out []endpoint
	add := func(from, name, value string) {
		if ep, ok := parseEndpoint(name, value, w.Namespace); ok {
			ep.From = from
			out = append(out, ep)
		}
	}
	spec := &w.Template.Spec
	var all []corev1.Container
	all = append(all, spec.InitContainers...)
	all = append(all, spec.Containers...)
	for _, c := range all {
		for _, e := range c.Env {
			from := "env " + e.Name
			switch {
			case e.ValueFrom == nil:
				add(from, e.Name, e.Value)
			case e.ValueFrom.ConfigMapKeyRef != nil:
				ref := e.ValueFrom.ConfigMapKeyRef
				if cm, ok := r.ConfigMaps[key(w.Namespace, ref.Name)]; ok {
					add(from, e.Name, cm.Data[ref.Key])
				}
			case e.ValueFrom.SecretKeyRef != nil:
				ref := e.ValueFrom.SecretKeyRef
				if s, ok := r.Secrets[key(w.Namespace, ref.Name)]; ok {
					add(from, e.Name, secretValue(s, ref.Key))
				}
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil {
				if cm, ok := r.ConfigMaps[key(w.Namespace, ef.ConfigMapRef.Name)]; ok {
					for k, v := range cm.Data {
						add("envFrom "+cm.Name, ef.Prefix+k, v)
					}
				}
			}
			if ef.SecretRef != nil {
				if s, ok := r.Secrets[key(w.Namespace, ef.SecretRef.Name)]; ok {
					for k := range keysOf(s.StringData, s.Data) {
						add("envFrom "+s.Name, ef.Prefix+k, secretValue(s, k))
					}
				}
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			if s, ok := r.Secrets[key(w.Namespace, v.Secret.SecretName)]; ok {
				for k := range keysOf(s.StringData, s.Data) {
					add("volume "+v.Name+" key "+k, k, secretValue(s, k))
				}
			}
		}
		if v.ConfigMap != nil {
			if cm, ok := r.ConfigMaps[key(w.Namespace, v.ConfigMap.Name)]; ok {
				for k, val := range cm.Data {
					add("volume "+v.Name+" key "+k, k, val)
				}
			}
		}
	}
	return out
}

func secretValue(s *corev1.Secret, k string) string {
	if v, ok := s.StringData[k]; ok {
		return v
	}
	return string(s.Data[k])
}

var defaultPorts = map[string]int32{"postgres": 5432, "postgresql": 5432, "https": 443, "http": 80}

// parseEndpoint recognises a gRPC target in a *_ADDR variable or a URL with
// a host in any value.
func parseEndpoint(name, value, namespace string) (endpoint, bool) {
	value = strings.TrimSpace(value)
	var host, port string
	if strings.HasSuffix(name, "_ADDR") && value != "" {
		target := value
		for _, scheme := range []string{"dns:///", "dns:", "passthrough:///"} {
			target = strings.TrimPrefix(target, scheme)
		}
		h, p, err := net.SplitHostPort(target)
		if err != nil {
			return endpoint{}, false
		}
		host, port = h, p
	} else if strings.Contains(strings.ToUpper(name), "URL") {
		u, err := url.Parse(value)
		if err != nil || u.Host == "" {
			return endpoint{}, false
		}
		def, known := defaultPorts[u.Scheme]
		if !known {
			return endpoint{}, false
		}
		host, port = u.Hostname(), u.Port()
		if port == "" {
			port = strconv.Itoa(int(def))
		}
	} else {
		return endpoint{}, false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return endpoint{}, false
	}
	ep := endpoint{Host: host, Port: int32(n)}
	ep.Service, ep.Namespace, ep.InCluster = clusterService(host, namespace)
	return ep, true
}

// clusterService tells whether host names a Service of the cluster: a bare
// name (in namespace), name.ns.svc or name.ns.svc.cluster.local. Anything
// else (name.ns included, which looks like a domain) is taken as external.
func clusterService(host, namespace string) (string, string, bool) {
	if net.ParseIP(host) != nil || host == "localhost" {
		return "", "", false
	}
	parts := strings.Split(strings.TrimSuffix(strings.TrimSuffix(host, "."), ".cluster.local"), ".")
	switch {
	case len(parts) == 1:
		return parts[0], namespace, true
	case len(parts) == 3 && parts[2] == "svc":
		return parts[0], parts[1], true
	}
	return "", "", false
}

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        endpoint
		ok          bool
	}{
		{"AUTH_ADDR", "auth:50051", endpoint{Host: "auth", Port: 50051, InCluster: true, Service: "auth", Namespace: "chat"}, true},
		{"AUTH_ADDR", "dns:///auth.other.svc.cluster.local:50051", endpoint{Host: "auth.other.svc.cluster.local", Port: 50051, InCluster: true, Service: "auth", Namespace: "other"}, true},
		{"url", "postgres://u:p@postgres:5432/chat?sslmode=disable", endpoint{Host: "postgres", Port: 5432, InCluster: true, Service: "postgres", Namespace: "chat"}, true},
		{"url", "postgres://u:p@db.example.internal/chat", endpoint{Host: "db.example.internal", Port: 5432}, true},
		{"PROVIDER_BASE_URL", "https://api.openai.com/v1", endpoint{Host: "api.openai.com", Port: 443}, true},
		{"PROVIDER", "echo", endpoint{}, false},
		{"CORS_ALLOWED_ORIGINS", "https://chat.example.com", endpoint{}, false},
		{"DRAIN_TIMEOUT", "30s", endpoint{}, false},
	} {
		got, ok := parseEndpoint(tc.name, tc.value, "chat")
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseEndpoint(%q, %q) = %+v, %v; want %+v, %v", tc.name, tc.value, got, ok, tc.want, tc.ok)
		}
	}
}

func sortedValues[V any](m map[string]V) []V {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]V, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}
