package netron

import (
	"context"
	"github.com/netron-go/netron/internal/rpccore"

	"github.com/netron-go/netron/peer"
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
	n.reg.OnPropertyChange(func(c rpccore.PropertyChange) {
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

// ExposeService publishes the service qualifiedName of this node on the
// peer (Titan's expose_service task), which relays its other peers'
// requests for it to this node: they find it there by its name and call
// it as if the peer served it. The peer must allow it
// (Config.AllowRemoteExposure on a Go node, allowRemoteServiceExposure on
// a Titan one): else the error matches rpc.ErrForbidden. It stays
// published until UnexposeService, Unexpose here, or the connection
// closes.
func (p *Peer) ExposeService(ctx context.Context, qualifiedName string) error {
	conn, err := p.activeConn()
	if err != nil {
		return err
	}
	_, err = p.node.client.Publish(ctx, conn, p.node.reg, qualifiedName)
	return err
}

// UnexposeService withdraws a service ExposeService published on the peer.
func (p *Peer) UnexposeService(ctx context.Context, qualifiedName string) error {
	conn, err := p.activeConn()
	if err != nil {
		return err
	}
	return p.node.client.Unpublish(ctx, conn, p.node.reg, qualifiedName)
}
