package netron

import (
	"context"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/discovery"
)

// TopicPresence carries a NodeChange for every change of the cluster's
// membership that discovery reports: a node joined, updated its
// announcement (services, address) or left. NodeEvent (TopicNodeEvents)
// reports only joins and leaves.
const TopicPresence = "netron.events.presence"

// Values of NodeChange.Change, and of MetaChange.
const (
	ChangeJoined  = "joined"
	ChangeUpdated = "updated"
	ChangeLeft    = "left"
)

// Metadata of presence messages (KindPresence).
const (
	// MetaNode is the id of the node that changed.
	MetaNode = "netron.node"
	// MetaChange is ChangeJoined, ChangeUpdated or ChangeLeft.
	MetaChange = "netron.change"
	// MetaAddress is the node's announced address ("" for a client-only
	// node).
	MetaAddress = "netron.address"
	// MetaMissed, when present, counts the changes discovery could not
	// report one by one before this one (see discovery.Event.Missed).
	MetaMissed = "netron.missed"
	// KindPresence is the MetaKind of a presence message.
	KindPresence = "presence"
)

// NodeChange is one change of the cluster's membership as discovery
// reports it (see Subscribe and TopicPresence). This node's own changes
// are not reported.
type NodeChange struct {
	Change   string   `msgpack:"change" json:"change"`
	NodeID   string   `msgpack:"nodeId" json:"nodeId"`
	Address  string   `msgpack:"address,omitempty" json:"address,omitempty"`
	Services []string `msgpack:"services,omitempty" json:"services,omitempty"`
	// Missed counts the changes before this one that discovery could
	// not report one by one (it resynchronised: this change is part of the
	// difference it found).
	Missed int `msgpack:"missed,omitempty" json:"missed,omitempty"`
}

// presenceOf turns a discovery event into a NodeChange; false for events
// that are not a change of a node (ChangesMissed).
func presenceOf(ev discovery.Event, services []string) (NodeChange, bool) {
	c := NodeChange{NodeID: ev.Node.ID, Address: ev.Node.Address, Services: services, Missed: ev.Missed}
	switch ev.Kind {
	case discovery.NodeJoined:
		c.Change = ChangeJoined
	case discovery.NodeUpdated:
		c.Change = ChangeUpdated
	case discovery.NodeLeft:
		c.Change = ChangeLeft
	default:
		return c, false
	}
	return c, true
}

// publishPresence publishes a change on TopicPresence.
func (h *eventHub) publishPresence(ctx context.Context, c NodeChange) error {
	return bus.Publish(ctx, h.n.bus, TopicPresence, c)
}

// presenceMessage is the Watermill form of a NodeChange.
func (m *nodeMarshaler) presenceMessage(c NodeChange) (*message.Message, error) {
	msg := m.newMessage(KindPresence)
	msg.Metadata.Set(MetaNode, c.NodeID)
	msg.Metadata.Set(MetaChange, c.Change)
	msg.Metadata.Set(MetaAddress, c.Address)
	if c.Missed > 0 {
		msg.Metadata.Set(MetaMissed, strconv.Itoa(c.Missed))
	}
	return m.withPayload(msg, c)
}
