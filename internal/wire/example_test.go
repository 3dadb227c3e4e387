package wire_test

import (
	"fmt"
	"reflect"

	"github.com/netron-go/netron/internal/wire"
)

// A CALL request as Titan sends it (capture 1, #16), decoded and answered.
func Example() {
	frame := []byte("\x00\x00\x00\x07\x43\x94\xb0calculator@1.0.0\xa3add\x02\x03")
	p, err := wire.Decode(frame)
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Type(), p.ID, p.IsRequest())

	dec := wire.NewDecoder(p.Data)
	defer wire.ReleaseDecoder(dec)
	n, _ := dec.DecodeArrayLen()
	service, _ := dec.DecodeString()
	method, _ := dec.DecodeString()
	args := make([]int, n-2)
	for i := range args {
		if err := wire.DecodeArg(dec, reflect.ValueOf(&args[i]).Elem()); err != nil {
			panic(err)
		}
	}
	fmt.Println(service, method, args)

	reply := wire.AppendHeader(nil, p.ID, wire.Flags(wire.TypeCall, false, 0))
	reply, _ = wire.AppendMarshal(reply, args[0]+args[1])
	fmt.Printf("% x\n", reply)
	// Output:
	// CALL 7 true
	// calculator@1.0.0 add [2 3]
	// 00 00 00 07 03 05
}

// Extension values decode into an interface as the value types of package wire.
func ExampleUnmarshal() {
	data := []byte("\xc7\x0e\x6b\xa1\x31\x01\x01\xa9ts-client") // capture 2, #6
	var v any
	if err := wire.Unmarshal(data, &v); err != nil {
		panic(err)
	}
	ref := v.(wire.StreamReference)
	fmt.Printf("%T %q live=%v peer=%s\n", v, ref.StreamID, ref.Live, ref.PeerID)
	// Output:
	// wire.StreamReference "1" live=true peer=ts-client
}
