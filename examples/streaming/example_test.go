package main

import (
	"context"
	"os"
)

func Example() {
	if err := run(context.Background(), os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// streamData(5):
	//   Received: Chunk 0
	//   Received: Chunk 1
	//   Received: Chunk 2
	//   Received: Chunk 3
	//   Received: Chunk 4
	// readings("thermo") until 1.5:
	//   thermo = 0
	//   thermo = 0.5
	//   thermo = 1
	//   thermo = 1.5
	//   readings producer stopped: the consumer went away
	// faulty():
	//   chunk 0
	//   chunk 1
	//   the stream failed: "sensor offline" (errors.Is(err, stream.ErrRemote) = true)
	// sum(1..100 uploaded as a stream) = 5050
}
