package k8s

import (
	"fmt"
	"net"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The NetworkPolicies are evaluated here as a CNI would: a pod selected by
// any policy of a direction is isolated in that direction and may only do
// what some rule of those policies allows; both the sender's egress and the
// receiver's ingress must allow a connection.

// pod is one side of a connection.
type pod struct {
	Name      string
	Namespace string
	NSLabels  labels.Set
	Labels    labels.Set
	Ports     []corev1.ContainerPort
}

func (r *rendering) podOf(w workload) pod {
	var ports []corev1.ContainerPort
	for _, c := range w.Template.Spec.Containers {
		ports = append(ports, c.Ports...)
	}
	return pod{w.String(), w.Namespace, r.nsLabels(w.Namespace), labels.Set(w.Template.Labels), ports}
}

// nsLabels are a namespace's labels, with the one the API server adds.
func (r *rendering) nsLabels(ns string) labels.Set {
	out := labels.Set{"kubernetes.io/metadata.name": ns}
	if n, ok := r.Namespaces[ns]; ok {
		for k, v := range n.Labels {
			out[k] = v
		}
	}
	return out
}

// Pods outside the rendering that the policies must know about.
var (
	ingressController = pod{
		Name: "the ingress controller", Namespace: "ingress-nginx",
		NSLabels: labels.Set{"kubernetes.io/metadata.name": "ingress-nginx"},
		Labels:   labels.Set{"app.kubernetes.io/name": "ingress-nginx"},
	}
	kubeDNS = pod{
		Name: "kube-dns", Namespace: "kube-system",
		NSLabels: labels.Set{"kubernetes.io/metadata.name": "kube-system"},
		Labels:   labels.Set{"k8s-app": "kube-dns"},
		Ports: []corev1.ContainerPort{
			{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
		},
	}
)

func matches(sel *metav1.LabelSelector, set labels.Set) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(set)
}

func hasPolicyType(p *networkingv1.NetworkPolicy, typ networkingv1.PolicyType) bool {
	if len(p.Spec.PolicyTypes) == 0 { // the API's defaulting
		return typ == networkingv1.PolicyTypeIngress ||
			(typ == networkingv1.PolicyTypeEgress && len(p.Spec.Egress) > 0)
	}
	for _, t := range p.Spec.PolicyTypes {
		if t == typ {
			return true
		}
	}
	return false
}

func selects(p *networkingv1.NetworkPolicy, x pod) bool {
	return p.Namespace == x.Namespace && matches(&p.Spec.PodSelector, x.Labels)
}

// peerMatches: an ipBlock never matches a pod here (pod addresses are not
// known); a podSelector alone means the policy's own namespace.
func peerMatches(peer networkingv1.NetworkPolicyPeer, policyNS string, x pod) bool {
	if peer.IPBlock != nil {
		return false
	}
	if peer.NamespaceSelector == nil {
		if x.Namespace != policyNS {
			return false
		}
	} else if !matches(peer.NamespaceSelector, x.NSLabels) {
		return false
	}
	return peer.PodSelector == nil || matches(peer.PodSelector, x.Labels)
}

// portMatches: does a rule's port list admit port/protocol on dest (whose
// container ports resolve named ports)?
func portMatches(ports []networkingv1.NetworkPolicyPort, dest pod, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.Int:
			if port == p.Port.IntVal || (p.EndPort != nil && port >= p.Port.IntVal && port <= *p.EndPort) {
				return true
			}
		default:
			for _, cp := range dest.Ports {
				cpp := cp.Protocol
				if cpp == "" {
					cpp = corev1.ProtocolTCP
				}
				if cp.Name == p.Port.StrVal && cp.ContainerPort == port && cpp == proto {
					return true
				}
			}
		}
	}
	return false
}

func (r *rendering) egressAllowed(src, dst pod, port int32, proto corev1.Protocol) bool {
	isolated := false
	for _, p := range r.NetworkPolicies {
		if !selects(p, src) || !hasPolicyType(p, networkingv1.PolicyTypeEgress) {
			continue
		}
		isolated = true
		for _, rule := range p.Spec.Egress {
			if !portMatches(rule.Ports, dst, port, proto) {
				continue
			}
			if len(rule.To) == 0 {
				return true
			}
			for _, peer := range rule.To {
				if peerMatches(peer, p.Namespace, dst) {
					return true
				}
			}
		}
	}
	return !isolated
}

func (r *rendering) ingressAllowed(dst, src pod, port int32, proto corev1.Protocol) bool {
	isolated := false
	for _, p := range r.NetworkPolicies {
		if !selects(p, dst) || !hasPolicyType(p, networkingv1.PolicyTypeIngress) {
			continue
		}
		isolated = true
		for _, rule := range p.Spec.Ingress {
			if !portMatches(rule.Ports, dst, port, proto) {
				continue
			}
			if len(rule.From) == 0 {
				return true
			}
			for _, peer := range rule.From {
				if peerMatches(peer, p.Namespace, src) {
					return true
				}
			}
		}
	}
	return !isolated
}

func (r *rendering) connects(src, dst pod, port int32, proto corev1.Protocol) bool {
	return r.egressAllowed(src, dst, port, proto) && r.ingressAllowed(dst, src, port, proto)
}

// link is one connection the configuration asks for: from a workload to a
// port of another workload's pods.
type link struct {
	From, To string
	Port     int32
}

func (l link) String() string { return fmt.Sprintf("%s -> %s:%d", l.From, l.To, l.Port) }

// wantedLinks derives the in-cluster connections from the addresses the
// pods are given (TestReferencesExist checks that each resolves).
func (r *rendering) wantedLinks() map[link]bool {
	want := map[link]bool{}
	for _, w := range r.Workloads {
		for _, ep := range r.endpoints(w) {
			if !ep.InCluster {
				continue
			}
			svc, ok := r.Services[key(ep.Namespace, ep.Service)]
			if !ok {
				continue
			}
			sp := servicePort(svc, ep.Port)
			if sp == nil {
				continue
			}
			for _, target := range r.selectedBy(svc) {
				if cp := containerPort(target, targetPortOf(*sp), sp.Protocol); cp != 0 {
					want[link{w.String(), target.String(), cp}] = true
				}
			}
		}
	}
	return want
}

func TestNetworkPolicies(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendering) {
		pods := map[string]pod{}
		for _, w := range r.Workloads {
			pods[w.String()] = r.podOf(w)
		}

		t.Run("default deny", func(t *testing.T) {
			for _, p := range r.NetworkPolicies {
				if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 &&
					hasPolicyType(p, networkingv1.PolicyTypeIngress) && hasPolicyType(p, networkingv1.PolicyTypeEgress) &&
					len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 {
					return
				}
			}
			t.Error("no policy denies all ingress and egress of every pod")
		})

		t.Run("rules name their peers", func(t *testing.T) {
			for _, p := range r.NetworkPolicies {
				for i, rule := range p.Spec.Ingress {
					if len(rule.From) == 0 {
						t.Errorf("NetworkPolicy %s ingress rule %d admits every source", p.Name, i)
					}
				}
				for i, rule := range p.Spec.Egress {
					if len(rule.To) == 0 {
						t.Errorf("NetworkPolicy %s egress rule %d admits every destination", p.Name, i)
					}
				}
			}
		})

		t.Run("DNS", func(t *testing.T) {
			for name, x := range pods {
				for _, proto := range []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolTCP} {
					if !r.egressAllowed(x, kubeDNS, 53, proto) {
						t.Errorf("%s cannot reach cluster DNS on %s 53", name, proto)
					}
				}
			}
		})

		// Exactly the connections the configuration uses are open between
		// the pods of the namespace: every one it needs, no other.
		want := r.wantedLinks()
		t.Run("needed connections", func(t *testing.T) {
			if len(want) == 0 {
				t.Fatal("no connections derived from the configuration")
			}
			for l := range want {
				if !r.connects(pods[l.From], pods[l.To], l.Port, corev1.ProtocolTCP) {
					t.Errorf("%s is blocked", l)
				}
			}
			gw, ok := pods["Deployment/gateway"]
			if !ok {
				t.Fatal("no gateway")
			}
			if !r.ingressAllowed(gw, ingressController, gatewayPort, corev1.ProtocolTCP) {
				t.Errorf("the ingress controller cannot reach the gateway on %d", gatewayPort)
			}
		})
		t.Run("nothing else", func(t *testing.T) {
			names := make([]string, 0, len(pods))
			for n := range pods {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, dst := range names {
				d := pods[dst]
				stranger := pod{Name: "an unlabelled pod", Namespace: d.Namespace, NSLabels: d.NSLabels, Labels: labels.Set{}}
				for _, cp := range d.Ports {
					proto := cp.Protocol
					if proto == "" {
						proto = corev1.ProtocolTCP
					}
					for _, src := range names {
						if src == dst {
							continue
						}
						l := link{src, dst, cp.ContainerPort}
						if r.connects(pods[src], d, cp.ContainerPort, proto) && !want[l] {
							t.Errorf("%s is open but nothing uses it", l)
						}
					}
					if r.ingressAllowed(d, stranger, cp.ContainerPort, proto) {
						t.Errorf("%s:%d admits any pod of the namespace", dst, cp.ContainerPort)
					}
					// A pod elsewhere that wears our labels is still not ours,
					// in either direction.
					elsewhere := func(x pod) pod {
						x.Namespace, x.NSLabels = "elsewhere", labels.Set{"kubernetes.io/metadata.name": "elsewhere"}
						return x
					}
					for _, src := range names {
						if r.ingressAllowed(d, elsewhere(pods[src]), cp.ContainerPort, proto) {
							t.Errorf("%s:%d admits %s's labels from another namespace", dst, cp.ContainerPort, src)
						}
						if r.egressAllowed(pods[src], elsewhere(d), cp.ContainerPort, proto) {
							t.Errorf("%s may reach %s's labels in another namespace on %d", src, dst, cp.ContainerPort)
						}
					}
					if dst != "Deployment/gateway" && r.ingressAllowed(d, ingressController, cp.ContainerPort, proto) {
						t.Errorf("the ingress controller reaches %s:%d", dst, cp.ContainerPort)
					}
				}
			}
		})

		// Only the message service reaches the internet, and only on 443;
		// a pod configured with an external address may reach one on its
		// port.
		t.Run("egress outside the cluster", func(t *testing.T) {
			for _, w := range r.Workloads {
				x := pods[w.String()]
				for _, ep := range r.endpoints(w) {
					if ep.InCluster {
						continue
					}
					if !r.ipEgress(x, ep.Port, false) {
						t.Errorf("%s: %s points at %s:%d outside the cluster, which no policy lets it reach",
							w, ep.From, ep.Host, ep.Port)
					}
				}
				wide := r.ipEgressPorts(x, true)
				if w.String() == "Deployment/message" {
					if len(wide) != 1 || !wide[443] {
						t.Errorf("%s: internet egress on ports %v, want 443 only", w, keysInt(wide))
					}
				} else if len(wide) > 0 {
					t.Errorf("%s: may reach the internet on ports %v", w, keysInt(wide))
				}
			}
		})

		t.Run("every pod has its own policy", func(t *testing.T) {
			for name, x := range pods {
				own := false
				for _, p := range r.NetworkPolicies {
					if selects(p, x) && (len(p.Spec.PodSelector.MatchLabels) > 0 || len(p.Spec.PodSelector.MatchExpressions) > 0) {
						own = true
					}
				}
				if !own {
					t.Errorf("%s is selected only by namespace-wide policies", name)
				}
			}
		})
	})
}

// ipEgress: may x open TCP port to some address outside the cluster
// (an ipBlock)? With wide, only blocks of the whole address space count.
func (r *rendering) ipEgress(x pod, port int32, wide bool) bool {
	return r.ipEgressPorts(x, wide)[port] || r.ipEgressPorts(x, wide)[0]
}

// ipEgressPorts lists the TCP ports x may open to ipBlocks (0 = any port).
func (r *rendering) ipEgressPorts(x pod, wide bool) map[int32]bool {
	out := map[int32]bool{}
	for _, p := range r.NetworkPolicies {
		if !selects(p, x) || !hasPolicyType(p, networkingv1.PolicyTypeEgress) {
			continue
		}
		for _, rule := range p.Spec.Egress {
			hit := false
			for _, peer := range rule.To {
				if peer.IPBlock == nil {
					continue
				}
				_, n, err := net.ParseCIDR(peer.IPBlock.CIDR)
				if err != nil {
					continue
				}
				if ones, _ := n.Mask.Size(); !wide || ones == 0 {
					hit = true
				}
			}
			if !hit {
				continue
			}
			if len(rule.Ports) == 0 {
				out[0] = true
			}
			for _, pp := range rule.Ports {
				if pp.Protocol != nil && *pp.Protocol != corev1.ProtocolTCP {
					continue
				}
				if pp.Port == nil || pp.Port.Type != intstr.Int || pp.EndPort != nil {
					out[0] = true
					continue
				}
				out[pp.Port.IntVal] = true
			}
		}
	}
	return out
}

func keysInt(m map[int32]bool) []int32 {
	out := make([]int32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
