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
// attempts" for every connection that could not be made during an outage.
// A library that replaced it would change the logging of every other
// go-redis client of the program behind its user's back, so this package
// never calls redis.SetLogger: it reports outages itself, once, on the
// logger of WithLogger, and leaves the choice to the program, which can
// send go-redis's lines to slog with SetGoRedisLogger. (go-redis dials
// without the context of the command that needed the connection, so its
// lines cannot be told apart by the client or instance they concern.)

// Logger adapts slog to go-redis's process-wide logging interface: every
// line goes to one slog logger, at one level. Install it with
// SetGoRedisLogger, or redis.SetLogger(NewLogger(…)).
type Logger struct {
	l     *slog.Logger
	level slog.Level
}

// NewLogger returns a Logger that writes go-redis's lines to l at level. A
// nil l discards them.
func NewLogger(l *slog.Logger, level slog.Level) *Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Logger{l: l.With("component", "go-redis"), level: level}
}

// Printf implements go-redis's logging interface.
func (g *Logger) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	g.l.Log(ctx, g.level, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}

// SetGoRedisLogger sends, for the whole process, go-redis's log lines to l
// at level: it calls redis.SetLogger(NewLogger(l, level)). It is for main
// packages, which own the process; a library should leave go-redis's
// logger alone. Since a Discovery reports outages itself, slog.LevelDebug
// is a good level: go-redis's line per failed dial then shows only in
// debug logs.
func SetGoRedisLogger(l *slog.Logger, level slog.Level) {
	redis.SetLogger(NewLogger(l, level))
}
