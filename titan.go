package netron

import (
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// EventPropertyChange is emitted when a property exposed with the tag
// option notify changes (rpc.Property): by a peer's SET or by the service
// itself. Its one argument is a PropertyEvent.
const EventPropertyChange = "property:change"

// PropertyEvent is the argument of EventPropertyChange.
type PropertyEvent struct {
	Service  string `msgpack:"service" json:"service"` // qualified name
	DefID    string `msgpack:"defId" json:"defId"`
	Property string `msgpack:"property" json:"property"`
	Value    any    `msgpack:"value" json:"value"`
}

// allowRemoteExposure applies Config.AllowRemoteExposure.
func (n *Node) allowRemoteExposure() {
	if n.cfg.AllowRemoteExposure {
		n.server.AllowRemoteExposure(n.client)
	}
}

// watchProperties emits EventPropertyChange for the changes of notify
// properties.
func (n *Node) watchProperties() {
	n.reg.OnPropertyChange(func(c rpc.PropertyChange) {
		if n.isStopped() {
			return
		}
		_ = n.Emit(n.ctx, EventPropertyChange, PropertyEvent{Service: c.Service, DefID: c.ID, Property: c.Property, Value: c.Value})
	})
}

// authenticator is the Authenticator the hub checks at the upgrade, which
// the authenticate task uses too: Config.Authenticator, else the one of
// Config.Auth; nil without authentication.
func (c *Config) authenticator() peer.Authenticator {
	switch {
	case c.Authenticator != nil:
		return c.Authenticator
	case c.Auth.HMACKey != "":
		return peer.HMACToken([]byte(c.Auth.HMACKey))
	case c.Auth.Token != "":
		return peer.SharedToken(c.Auth.Token)
	}
	return nil
}
