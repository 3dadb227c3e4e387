// Package peer says who is on the other side of a connection: the Identity
// a peer proved at the handshake (IdentityFrom reads it from the context of
// its requests), the Authenticators a node checks it with (SharedToken,
// HMACToken with NewHMACToken for the dialling side), and the errors a
// connection ends with (ErrDisconnected, ErrWriteTimeout, …), which the
// errors of calls on it match.
//
// A node authenticates its peers when Config.Auth says so (package netron);
// a service method or task reads its caller with IdentityFrom, and
// rpc.Authorizer (rpc.ACL) decides what each identity may call.
// WithIdentity puts an identity into a context, for calling a handler in a
// test as a peer would.
package peer
