package redisdisc

import (
	"log/slog"
	"slices"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// malformedKey marks a watermill message made from a stream entry that has
// no payload field; the reader logs and skips it.
const malformedKey = "netron_malformed"

// genKey is the stream entry field, and the message metadata key, of the
// generation of a change (see scripts.go).
const genKey = "netron_gen"

// unmarshaller turns any stream entry into a message and never fails:
// watermill-redisstream ends the subscription when its Unmarshaller returns
// an error, so a single bad XADD would stop discovery. Entries this package
// writes use watermill's default format (_watermill_message_uuid, metadata,
// payload) plus the field netron_gen, so any watermill-redisstream
// subscriber can read them too.
type unmarshaller struct{}

func (unmarshaller) Unmarshal(values map[string]any) (*message.Message, error) {
	uuid, _ := values[redisstream.UUIDHeaderKey].(string)
	msg := message.NewMessage(uuid, nil)
	if g, ok := values[genKey].(string); ok {
		msg.Metadata.Set(genKey, g)
	}
	switch p := values["payload"].(type) {
	case string:
		msg.Payload = []byte(p)
	case []byte:
		msg.Payload = p
	default:
		fields := make([]string, 0, len(values))
		for k := range values {
			fields = append(fields, k)
		}
		slices.Sort(fields)
		if len(fields) > 8 {
			fields = append(fields[:8], "…")
		}
		msg.Metadata.Set(malformedKey, "no payload field (fields: "+strings.Join(fields, ", ")+")")
	}
	return msg, nil
}

// watermillLogger forwards watermill's logs at Debug: its read loop logs
// every failed XREAD as an error, every 500 ms during an outage, while this
// package reports outages itself, once, with backoff.
func watermillLogger(l *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(l.With("component", "watermill-redisstream"), map[slog.Level]slog.Level{
		slog.LevelError: slog.LevelDebug,
		slog.LevelWarn:  slog.LevelDebug,
		slog.LevelInfo:  slog.LevelDebug,
	})
}

// noClose hides Close: watermill-redisstream's Subscriber closes the client
// it is given, and the caller's client is not ours to close.
type noClose struct{ redis.UniversalClient }

func (noClose) Close() error { return nil }
