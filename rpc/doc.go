// Package rpc is what a caller and a service author of Netron use: the
// handle of a service (Service) and its calls (Call, Stream, OpenStream),
// the errors peers answer with, the description of a service, task
// arguments, and access control.
//
// A node (package netron) exposes a Go value as a versioned service
// ("name@version"; name: letters, digits and dots; version: semantic
// version) with Node.Expose: its exported methods become callable under
// their lowerCamel names (Add → "add", HTTPGet → "httpGet"). A method
// qualifies when its arguments can travel as msgpack (no channels or
// functions), it may take a leading context.Context (cancelled when the
// caller's connection closes; peer.IdentityFrom reads the caller), and it
// returns (), (T), (error) or (T, error). Nothing else is callable. A
// handler's panic becomes a 500 error for the caller and a log line. A task
// (Node.HandleTask, Peer.RunTask) is a function peers run by name; its
// TaskFunc reads its arguments from Args.
//
// Lookups (Node.Service, Peer.Service) take "name" (the latest release; a
// pre-release only when there is nothing else), "name@1.2.3" (exact) or a
// semver range ("name@^1", "name@~1.2", "name@>=1.0 <2"; the highest match
// wins; a plain Netron peer (Titan) resolves no ranges, so it is asked
// for the bare name and the version it answers is checked). The Service
// they return calls a remote or a local service alike;
// Call[T] decodes a typed result, and Service.Description returns the
// ServiceDescription its node announced (methods with their argument and
// result types, properties). Values decoded into empty interfaces are
// plain Go values (see Result.Decode), never the codec's own types.
//
// Streams: a method that returns a receivable channel, an
// iter.Seq2[T, error] or a stream.Source, or that takes a
// *stream.Writer[T] as its last parameter, produces a stream: the reply
// carries a StreamReference and the chunks follow (package stream; Titan's
// framing, with credit-based flow control between Go peers). Its context
// is cancelled when the consumer stops. Callers read it with OpenStream
// (a *stream.Reader[T]) or Stream (an iterator); Call of such a method
// fails with ErrStreamResult. A method may also take
// *stream.Reader[T] parameters: the caller passes a stream.Source, a
// channel or an iterator as that argument, and it is uploaded while the
// method reads it (Go peers only). A Reader parameter is closed when the
// method returns, or when the stream it produces ends.
//
// Properties: exported fields of type Property[T] or PropertyFunc[T] of
// an exposed struct are properties, read with GET and written with SET
// (Service.Get, Service.Set, Get[T]); the tag `netron:"name,readonly"`
// names one and makes it read-only, which the server enforces (403).
// Child services: a method that returns a Ref (Child("cart@1.0.0", v))
// hands its caller a service of its own, whose definition names the
// parent; Call[*Service] gives the caller a handle on it, a handle passed
// as an argument travels as a Reference that the server resolves to the
// service's value, and Service.Release (the unref_service task) or the
// connection's close releases it. See docs/titan.md.
//
// A node answers CALL, GET, SET and TASK requests from peers
// (query_interface, the old package's abilities task and Titan's core
// tasks unref_service, invalidate_cache, authenticate, expose_service and
// unexpose_service are built in; Node.HandleTask adds more).
//
// Errors from peers are *Error values with a code (Titan's codes: 400, 403,
// 404, 408, 429, 500, 503), message, details and custom fields; they match
// the sentinels ErrServiceNotFound, ErrMethodNotFound, ErrArgumentCount,
// ErrArgumentType and the others with errors.Is. A handler that returns an
// *Error sends it as a TitanError (ext 110) with its code; any other error
// goes out as a JavaScript Error (ext 126), as a thrown error would from a
// Titan service, and arrives with code 500. NewJSError chooses the
// JavaScript class (Kind: TypeError, RangeError, …), name and fields of
// an ext 126 error, Throw sends a bare value (a string, a number) as a
// TypeScript throw would; callers keep them in Error.Kind, Name, Fields
// and Thrown (errors.Is(err, ErrRangeError)).
//
// Numbers: JavaScript peers send every number that is not an int32 as a
// float64. An integer parameter accepts a float64 holding an exact integer
// and rejects anything else (2.5, or out of range) with ErrArgumentType.
//
// Memory: decoding a request's arguments allocates at most its decode
// budget (32 × its bytes + 64 KiB, at most Config.MaxDecodeMemory,
// 64 MiB), or the call fails with ErrDecodeBudget (400); the third request
// of a connection in a row whose own data does that closes the connection
// (1008). A request that does not fit the node's inbound memory
// (Config.MaxInboundMemory) is refused at once with a 503 error (reason
// "InboundMemory"). Results from peers decode within the same cap, not
// charged (the caller asked for them); results of local calls have no
// budget. docs/reliability.md has the details.
package rpc
