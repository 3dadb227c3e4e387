package rpc

import (
	"slices"

	"github.com/netron-go/netron/internal/wire"
)

// ServiceDescription describes a service as the node serving it announces
// it (Netron's service definition): what can be called and read on it.
// Service.Description and Peer.Services return copies: a description is a
// value its holder may keep and modify.
type ServiceDescription struct {
	Name    string `json:"name" msgpack:"name"`
	Version string `json:"version" msgpack:"version"`
	// ID identifies the service on the connection it was announced on (its
	// definition id); a node gives its services new ids when it restarts.
	ID string `json:"id" msgpack:"id"`
	// ParentID is the ID of the service whose method returned this one (a
	// child service); "" for a service exposed by name.
	ParentID string `json:"parentId,omitempty" msgpack:"parentId,omitempty"`
	// PeerID is the id of the node that serves the service.
	PeerID string `json:"peerId" msgpack:"peerId"`
	// Methods are the service's methods by the name they are called by
	// ("add").
	Methods map[string]MethodDescription `json:"methods,omitempty" msgpack:"methods,omitempty"`
	// Properties are the service's properties by name (Titan services have
	// them; Go services have none yet).
	Properties map[string]PropertyDescription `json:"properties,omitempty" msgpack:"properties,omitempty"`
}

// QualifiedName returns "name@version".
func (d ServiceDescription) QualifiedName() string { return d.Name + "@" + d.Version }

// MethodNames returns the names of the methods, sorted.
func (d ServiceDescription) MethodNames() []string {
	out := make([]string, 0, len(d.Methods))
	for m := range d.Methods {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// MethodDescription describes one method.
type MethodDescription struct {
	// Arguments are the parameters in call order (Index 0, 1, …).
	Arguments []ArgumentDescription `json:"arguments" msgpack:"arguments"`
	// Result is the result's type in Titan's notation ("number",
	// "string", "void", …).
	Result string `json:"result" msgpack:"result"`
	// Idempotent reports that the method may run again on another
	// instance of the service when a call of it failed in transit (see
	// Idempotent, the ExposeOption). Announced by Go nodes only: false for
	// plain Netron peers.
	Idempotent bool `json:"idempotent,omitempty" msgpack:"idempotent,omitempty"`
}

// ArgumentDescription describes one parameter of a method.
type ArgumentDescription struct {
	Index int    `json:"index" msgpack:"index"` // position, from 0 (as on the wire)
	Type  string `json:"type" msgpack:"type"`   // Titan's notation
}

// PropertyDescription describes one property of a service.
type PropertyDescription struct {
	Type     string `json:"type" msgpack:"type"`
	ReadOnly bool   `json:"readonly" msgpack:"readonly"`
}

// describe turns a definition as it travels into its description.
func describe(def wire.Definition) ServiceDescription {
	d := ServiceDescription{
		Name: def.Meta.Name, Version: def.Meta.Version,
		ID: def.ID, ParentID: def.ParentID, PeerID: def.PeerID,
	}
	if len(def.Meta.Methods) > 0 {
		d.Methods = make(map[string]MethodDescription, len(def.Meta.Methods))
		for name, m := range def.Meta.Methods {
			md := MethodDescription{Result: m.Type, Idempotent: m.Idempotent, Arguments: make([]ArgumentDescription, len(m.Arguments))}
			for i, a := range m.Arguments {
				md.Arguments[i] = ArgumentDescription{Index: a.Index, Type: a.Type}
			}
			// Titan may send them in any order.
			slices.SortStableFunc(md.Arguments, func(a, b ArgumentDescription) int { return a.Index - b.Index })
			d.Methods[name] = md
		}
	}
	if len(def.Meta.Properties) > 0 {
		d.Properties = make(map[string]PropertyDescription, len(def.Meta.Properties))
		for name, p := range def.Meta.Properties {
			d.Properties[name] = PropertyDescription{Type: p.Type, ReadOnly: p.Readonly}
		}
	}
	return d
}
