package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// routeTable knows which methods each path template has. It is read from the
// embedded OpenAPI document, which protoc-gen-openapiv2 builds from the same
// api/chat_v1.yaml as the handlers, so it cannot drift from the mux. The mux
// keeps its routes private; this table answers the two questions the mux
// cannot: the Allow header of a 405, and which PUT routes are updates that
// also have a PATCH binding.
type routeTable struct {
	routes []route
}

type route struct {
	segments []string // "{...}" matches one non-empty segment
	methods  []string // upper case, sorted
}

func newRouteTable(openAPI []byte, extra map[string][]string) (*routeTable, error) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		return nil, fmt.Errorf("reading the embedded OpenAPI document: %w", err)
	}
	if len(doc.Paths) == 0 {
		return nil, fmt.Errorf("the embedded OpenAPI document has no paths")
	}
	all := make(map[string][]string, len(doc.Paths)+len(extra))
	for path, ops := range doc.Paths {
		for method := range ops {
			all[path] = append(all[path], strings.ToUpper(method))
		}
	}
	for path, methods := range extra {
		all[path] = append(all[path], methods...)
	}
	t := &routeTable{}
	for path, methods := range all {
		slices.Sort(methods)
		t.routes = append(t.routes, route{
			segments: strings.Split(strings.TrimPrefix(path, "/"), "/"),
			methods:  slices.Compact(methods),
		})
	}
	return t, nil
}

func (r route) matches(segments []string) bool {
	if len(segments) != len(r.segments) {
		return false
	}
	for i, want := range r.segments {
		if strings.HasPrefix(want, "{") {
			if segments[i] == "" {
				return false
			}
		} else if segments[i] != want {
			return false
		}
	}
	return true
}

// allowed returns the sorted methods of every template that matches path.
func (t *routeTable) allowed(path string) []string {
	segments := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var methods []string
	for _, r := range t.routes {
		if r.matches(segments) {
			methods = append(methods, r.methods...)
		}
	}
	slices.Sort(methods)
	return slices.Compact(methods)
}

// isUpdate reports whether path matches a template that has both PUT and
// PATCH: an AIP-134 update whose PUT binding should behave like PATCH.
func (t *routeTable) isUpdate(path string) bool {
	segments := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for _, r := range t.routes {
		if r.matches(segments) && slices.Contains(r.methods, http.MethodPut) &&
			slices.Contains(r.methods, http.MethodPatch) {
			return true
		}
	}
	return false
}
