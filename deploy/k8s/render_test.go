// Package k8s tests the Kubernetes manifests of chat-backend: every overlay
// is rendered with kustomize (as a library, exactly as `kubectl apply -k`
// would), every object is decoded strictly into its typed Kubernetes API
// struct, and the rendering is checked for what an operator relies on
// (probes, resources, security, references, ports, network paths).
//
//	go test ./...    (from deploy/k8s; `make -C deploy/k8s test`)
package k8s

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// newObject returns an empty typed object for each apiVersion/kind the
// manifests may contain. A kind missing here fails the test: adding one
// means deciding how it is checked.
var newObject = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                    func() any { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
	"networking.k8s.io/v1/Ingress":           func() any { return &networkingv1.Ingress{} },
}

// decodeStrict decodes one YAML object the way the API server's strict field
// validation does: duplicate keys, unknown fields and fields in the wrong
// case are errors.
func decodeStrict(y []byte, into any) error {
	j, err := yaml.YAMLToJSONStrict(y)
	if err != nil {
		return err
	}
	strictErrs, err := sigsjson.UnmarshalStrict(j, into,
		sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return fmt.Errorf("strict decoding: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// workload is anything with a pod template.
type workload struct {
	Kind, Name, Namespace string
	Template              *corev1.PodTemplateSpec
	IsJob                 bool
	Replicas              *int32 // Deployment and StatefulSet only
	// StatefulSet only: its governing Service and volumeClaimTemplates.
	ServiceName string
	Claims      []string
}

func (w workload) String() string { return w.Kind + "/" + w.Name }

// rendering is one overlay, decoded and indexed by namespace/name.
type rendering struct {
	Overlay         string
	Namespaces      map[string]*corev1.Namespace
	ServiceAccounts map[string]*corev1.ServiceAccount
	ConfigMaps      map[string]*corev1.ConfigMap
	Secrets         map[string]*corev1.Secret
	Services        map[string]*corev1.Service
	Workloads       []workload
	HPAs            []*autoscalingv2.HorizontalPodAutoscaler
	PDBs            []*policyv1.PodDisruptionBudget
	NetworkPolicies []*networkingv1.NetworkPolicy
	Ingresses       []*networkingv1.Ingress
}

func key(namespace, name string) string { return namespace + "/" + name }

// overlayDirs lists every overlay that has a kustomization, dev and prod at
// least. A local overlay (overlays/*-local, git-ignored, with real secrets)
// is rendered and checked too when it exists.
func overlayDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("overlays")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join("overlays", e.Name(), "kustomization.yaml")); err == nil {
			dirs = append(dirs, e.Name())
		}
	}
	for _, want := range []string{"dev", "prod"} {
		if !contains(dirs, want) {
			t.Fatalf("overlays/%s is missing (have %v)", want, dirs)
		}
	}
	sort.Strings(dirs)
	return dirs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var renderCache = map[string]*rendering{}

// render runs kustomize on overlays/name from disk and decodes the result.
func render(t *testing.T, name string) *rendering {
	t.Helper()
	if r, ok := renderCache[name]; ok {
		return r
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).
		Run(filesys.MakeFsOnDisk(), filepath.Join("overlays", name))
	if err != nil {
		t.Fatalf("kustomize build overlays/%s: %v", name, err)
	}
	r := &rendering{
		Overlay:         name,
		Namespaces:      map[string]*corev1.Namespace{},
		ServiceAccounts: map[string]*corev1.ServiceAccount{},
		ConfigMaps:      map[string]*corev1.ConfigMap{},
		Secrets:         map[string]*corev1.Secret{},
		Services:        map[string]*corev1.Service{},
	}
	for _, res := range resMap.Resources() {
		gvk := res.GetGvk()
		id := gvk.ApiVersion() + "/" + gvk.Kind
		factory, ok := newObject[id]
		if !ok {
			t.Errorf("%s %s: kind not known to this test", id, res.GetName())
			continue
		}
		y, err := res.AsYAML()
		if err != nil {
			t.Fatalf("%s %s: %v", id, res.GetName(), err)
		}
		obj := factory()
		if err := decodeStrict(y, obj); err != nil {
			t.Errorf("%s %s does not decode strictly: %v", id, res.GetName(), err)
			continue
		}
		r.add(t, obj)
	}
	if t.Failed() {
		t.FailNow()
	}
	renderCache[name] = r
	return r
}

func (r *rendering) add(t *testing.T, obj any) {
	switch o := obj.(type) {
	case *corev1.Namespace:
		r.Namespaces[o.Name] = o
	case *corev1.ServiceAccount:
		r.ServiceAccounts[key(o.Namespace, o.Name)] = o
	case *corev1.ConfigMap:
		r.ConfigMaps[key(o.Namespace, o.Name)] = o
	case *corev1.Secret:
		r.Secrets[key(o.Namespace, o.Name)] = o
	case *corev1.Service:
		r.Services[key(o.Namespace, o.Name)] = o
	case *appsv1.Deployment:
		r.Workloads = append(r.Workloads, workload{Kind: "Deployment", Name: o.Name, Namespace: o.Namespace,
			Template: &o.Spec.Template, Replicas: o.Spec.Replicas})
	case *appsv1.StatefulSet:
		w := workload{Kind: "StatefulSet", Name: o.Name, Namespace: o.Namespace,
			Template: &o.Spec.Template, Replicas: o.Spec.Replicas, ServiceName: o.Spec.ServiceName}
		for _, c := range o.Spec.VolumeClaimTemplates {
			w.Claims = append(w.Claims, c.Name)
		}
		r.Workloads = append(r.Workloads, w)
	case *batchv1.Job:
		r.Workloads = append(r.Workloads, workload{Kind: "Job", Name: o.Name, Namespace: o.Namespace,
			Template: &o.Spec.Template, IsJob: true})
	case *autoscalingv2.HorizontalPodAutoscaler:
		r.HPAs = append(r.HPAs, o)
	case *policyv1.PodDisruptionBudget:
		r.PDBs = append(r.PDBs, o)
	case *networkingv1.NetworkPolicy:
		r.NetworkPolicies = append(r.NetworkPolicies, o)
	case *networkingv1.Ingress:
		r.Ingresses = append(r.Ingresses, o)
	default:
		t.Fatalf("unhandled %T", obj)
	}
}

func (r *rendering) workload(kind, name string) (workload, bool) {
	for _, w := range r.Workloads {
		if w.Kind == kind && w.Name == name {
			return w, true
		}
	}
	return workload{}, false
}

// forEachOverlay runs check on every overlay's rendering as a subtest.
func forEachOverlay(t *testing.T, check func(t *testing.T, r *rendering)) {
	for _, name := range overlayDirs(t) {
		t.Run(name, func(t *testing.T) { check(t, render(t, name)) })
	}
}

func TestOverlaysRender(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendering) {
		if len(r.Workloads) == 0 {
			t.Fatal("no workloads")
		}
		for _, want := range []string{"auth", "conversation", "message", "gateway"} {
			if _, ok := r.workload("Deployment", want); !ok {
				t.Errorf("no Deployment %s", want)
			}
		}
		if _, ok := r.workload("Job", "chat-migrate"); !ok {
			t.Error("no migration Job chat-migrate")
		}
		if len(r.Ingresses) == 0 {
			t.Error("no Ingress")
		}
	})
}

// The decoder really is strict: a misspelt or unknown field is an error, as
// it would be for `kubectl apply --validate=strict`.
func TestDecodeStrictRejectsUnknownFields(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field": `
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  template:
    spec:
      containers:
        - name: x
          image: x:1
          readinessProbes: {}
`,
		"wrong case": `
apiVersion: v1
kind: Service
metadata: {name: x}
spec:
  ClusterIP: None
`,
		"duplicate key": `
apiVersion: v1
kind: ConfigMap
metadata: {name: x}
data: {a: "1", a: "2"}
`,
	} {
		t.Run(name, func(t *testing.T) {
			var obj any = &appsv1.Deployment{}
			if strings.Contains(doc, "kind: Service") {
				obj = &corev1.Service{}
			} else if strings.Contains(doc, "kind: ConfigMap") {
				obj = &corev1.ConfigMap{}
			}
			if err := decodeStrict([]byte(doc), obj); err == nil {
				t.Error("decoded without error")
			}
		})
	}
	ok := "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIP: None}\n"
	if err := decodeStrict([]byte(ok), &corev1.Service{}); err != nil {
		t.Errorf("valid Service: %v", err)
	}
}
