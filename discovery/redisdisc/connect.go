package redisdisc

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Connect is New with a client of its own, for the Redis server at addr
// ("host:port"), authenticating with password unless it is empty, on
// database db. Close closes that client, after everything else has stopped.
func Connect(addr, password string, db int, opts ...Option) (*Discovery, error) {
	if addr == "" {
		return nil, fmt.Errorf("%w: empty redis address", ErrInvalidOption)
	}
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, DB: db})
	d, err := New(c, opts...)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	d.ownClient = true
	return d, nil
}
