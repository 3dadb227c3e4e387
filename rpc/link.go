package rpc

import (
	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/internal/rpclink"
	"github.com/netron-go/netron/internal/wire"
)

// The engine (internal/rpccore) builds Services, Results and Args through
// these.
func init() {
	rpclink.Register(rpclink.Funcs{
		NewService:  func(def wire.Definition, h rpclink.Handle) any { return &Service{def: def, h: h} },
		Definition:  func(svc any) wire.Definition { return svc.(*Service).def },
		Describe:    func(def wire.Definition) any { return describe(def) },
		FromWire:    func(v any) error { return fromWire(v) },
		PublicValue: publicValue,
		IsCellType:  isCellType,
		CellOf:      cellOf,
		RefOf:       refOf,
		NewResult:   func(raw []byte, max int64) any { return Result{raw: raw, max: max} },
		NewArgs: func(dec *msgpack.Decoder, n int, argErr func(error) error) any {
			return &Args{dec: dec, n: n, argErr: argErr}
		},
	})
}
