package apicheck

import (
	"slices"
	"strings"
	"testing"
)

// layers lists, for every package of the module that is not a program, the
// packages of the module it may import ("" is the root package). A new
// package, or a new dependency between two, is a design decision: add it
// here and to DESIGN.md §3.
var layers = map[string][]string{
	"":                        {"bus", "peer", "rpc", "stream", "discovery", "discovery/redisdisc", "internal/obs", "internal/rpccore", "internal/streamcore", "internal/transport", "internal/ui", "internal/wire"},
	"app":                     {"", "rpc"},
	"bus":                     {},
	"peer":                    {"internal/identctx"},
	"rpc":                     {"peer", "stream", "internal/rpclink", "internal/streamcore", "internal/wire"},
	"stream":                  {"internal/streamcore", "internal/wire"},
	"discovery":               {},
	"discovery/redisdisc":     {"discovery"},
	"discovery/discoverytest": {"discovery"},
	"internal/wire":           {},
	"internal/identctx":       {},
	"internal/transport":      {"bus", "peer", "internal/identctx", "internal/obs", "internal/wire"},
	"internal/streamcore":     {"bus", "peer", "internal/obs", "internal/transport", "internal/wire"},
	"internal/rpclink":        {"internal/streamcore", "internal/wire"},
	"internal/rpccore":        {"bus", "peer", "rpc", "stream", "internal/obs", "internal/rpclink", "internal/streamcore", "internal/transport", "internal/wire"},
	"internal/obs":            {},
	"internal/ui":             {},
	"internal/apicheck":       {},
	"internal/docstest":       {},
	"internal/exampletest":    {},
	"internal/testredis":      {},
}

func TestLayering(t *testing.T) {
	for _, p := range goList(t, "./...") {
		if p.Name == "main" {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		allowed, ok := layers[rel]
		if !ok {
			t.Errorf("package %q is not in layers", rel)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp+"/", module+"/") {
				continue
			}
			dep := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			if !slices.Contains(allowed, dep) {
				t.Errorf("%q imports %q, which layers does not allow", rel, dep)
			}
		}
	}
}
