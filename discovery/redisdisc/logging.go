package redisdisc

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// go-redis logs through one logger per process (redis.SetLogger), by
// default to stderr: "redis: … pool.go:770: … failed to dial after 5
// attempts" for every command that could not connect. A library that
// replaced it would change the logging of every other go-redis client of
// the program behind its user's back, so this package never calls
// redis.SetLogger. It reports outages itself, once, on the logger of
// WithLogger, and marks the contexts of its own commands so that a program
// can route go-redis's messages with Logger (SetGoRedisLogger).

type loggerKey struct{}

// withLogger marks ctx as a context of this package's Redis commands.
func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// Logger adapts slog to go-redis's process-wide logger. Install it once,
// in main, with SetGoRedisLogger or redis.SetLogger(redisdisc.NewLogger(…)):
// messages about the commands of a Discovery go to that instance's logger
// (WithLogger) at Debug, since the instance reports outages itself; every
// other message goes to the given logger at the given level.
type Logger struct {
	l     *slog.Logger
	level slog.Level
}

// NewLogger returns a Logger that writes go-redis's messages that are not
// about a Discovery's commands to l at level. A nil l discards them.
func NewLogger(l *slog.Logger, level slog.Level) *Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Logger{l: l.With("component", "go-redis"), level: level}
}

// Printf implements go-redis's logging interface.
func (g *Logger) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	if ctx == nil {
		ctx = context.Background()
	}
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		l.Log(ctx, slog.LevelDebug, "go-redis: "+msg)
		return
	}
	g.l.Log(ctx, g.level, msg)
}

// SetGoRedisLogger sends, for the whole process, go-redis's log lines to l:
// it calls redis.SetLogger(NewLogger(l, level)). It is for main packages,
// which own the process; libraries should leave go-redis's logger alone.
func SetGoRedisLogger(l *slog.Logger, level slog.Level) {
	redis.SetLogger(NewLogger(l, level))
}
