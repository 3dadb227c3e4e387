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
	// calculator@1.0.0 methods [add divide multiply slow stats]
	// "calculator@^2" resolves to calculator@2.0.0
	// "calculator" resolves to calculator@2.0.0
	// add(2, 3) = 5
	// multiply(4, 5) = 20
	// stats([3 1 2]) = {Count:3 Mean:2 Min:1 Max:3}
	// divide(1, 0) failed: code 400, "division by zero", details map[dividend:1]
	// power on 1.0.0: method not found = true
	// add("two", 3): bad argument = true
	// power(2, 10) on calculator@2.0.0 = 1024
	// slow(5000) with a 50ms deadline: deadline exceeded = true
	// local add(20, 22) = 42
}
