package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

// Module is a part of an application with a lifecycle. Start runs when the
// application starts, in the order the modules were registered; Stop when
// it stops, in the reverse order. Both get a context that bounds them: the
// start context, and on shutdown one that ends at the shutdown timeout.
type Module interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Named is implemented by modules that give themselves a name for logs and
// errors; other modules are named by their type.
type Named interface {
	Name() string
}

// NetronProvider gives access to the application's Netron without creating
// it up front: the accessor a module keeps when it needs the Netron only
// sometimes. *App implements it. A module that always needs the Netron
// takes the *netron.Node as a constructor argument instead.
type NetronProvider interface {
	// Netron returns the Netron, creating it on first use.
	Netron() (*netron.Node, error)
}

type state int

const (
	stateNew state = iota
	stateStarting
	stateRunning
	stateStopping
	stateStopped
)

// App is a Titan-style application: a logger, a configuration, user
// modules with Start and Stop, and a Netron that is created lazily, on
// first access, and started and stopped with the application.
//
// Startup (Start): the logger and the configuration are ready (New), the
// Netron is registered but not created, the modules start in registration
// order, the Netron starts (binds its port) if something accessed it, and
// the application is ready. A Netron that cannot start fails Start, which
// then stops what it started, unless TolerateNetronFailure says otherwise.
//
// Shutdown (Stop) runs in reverse: the modules stop in reverse order, the
// Netron stops, the logger is flushed.
//
// Run does both and waits in between for the context to end or for SIGINT
// or SIGTERM, then shuts down gracefully within the shutdown timeout.
type App struct {
	cfg             *Config
	logger          *slog.Logger
	flush           func() error
	newNetron       func(netron.Config) (*netron.Node, error)
	tolerate        bool
	shutdownTimeout time.Duration
	signals         []os.Signal

	lc sync.Mutex // serializes Start and Stop

	mu          sync.Mutex
	state       state
	modules     []Module
	started     int // how many modules started
	node        *netron.Node
	nodeStarted bool
	netronErr   error

	ready   chan struct{}
	done    chan struct{}
	stopErr error // set before done is closed
}

// Option configures New.
type Option func(*options)

type options struct {
	cfg             *Config
	netronCfg       *netron.Config
	logger          *slog.Logger
	logOutput       io.Writer
	modules         []Module
	newNetron       func(netron.Config) (*netron.Node, error)
	tolerate        bool
	shutdownTimeout time.Duration
	signals         []os.Signal
}

// WithConfig sets the configuration, as LoadConfig returns it.
func WithConfig(c *Config) Option { return func(o *options) { o.cfg = c } }

// WithNetronConfig sets the configuration of the Netron (the netron key),
// over the one of WithConfig.
func WithNetronConfig(c netron.Config) Option {
	return func(o *options) { o.netronCfg = &c }
}

// WithLogger sets the application's logger; the Netron logs to it too
// unless its configuration has a logger of its own. Without it the
// application logs to stderr (or WithLogOutput) with the level and format
// of the configuration's logger key.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithLogOutput sets where the default logger writes. When w has a Flush
// or Sync method, it is called last at shutdown.
func WithLogOutput(w io.Writer) Option { return func(o *options) { o.logOutput = w } }

// WithModules registers modules, as Register does.
func WithModules(m ...Module) Option {
	return func(o *options) { o.modules = append(o.modules, m...) }
}

// WithShutdownTimeout bounds the graceful shutdown of Run (default: the
// configuration's shutdownTimeout, else DefaultShutdownTimeout).
func WithShutdownTimeout(d time.Duration) Option {
	return func(o *options) { o.shutdownTimeout = d }
}

// WithSignals sets the signals that make Run shut down (default SIGINT and
// SIGTERM).
func WithSignals(sig ...os.Signal) Option {
	return func(o *options) { o.signals = sig }
}

// WithNetronFactory replaces netron.New as the constructor of the lazily
// created Netron, for decorating or instrumenting it.
func WithNetronFactory(f func(netron.Config) (*netron.Node, error)) Option {
	return func(o *options) { o.newNetron = f }
}

// TolerateNetronFailure restores the original's behaviour: a Netron that
// cannot start is logged as an error and the application starts anyway
// (NetronErr reports it). Without this option such a Netron fails Start,
// so that an application never reports healthy while nothing listens.
func TolerateNetronFailure() Option { return func(o *options) { o.tolerate = true } }

// New returns an application. The logger is ready and the configuration
// validated (an invalid one fails with a *ConfigError naming the field);
// the Netron is registered but not created.
func New(opts ...Option) (*App, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg := &Config{}
	if o.cfg != nil {
		c := *o.cfg
		cfg = &c
	}
	if o.netronCfg != nil {
		cfg.Netron = *o.netronCfg
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{
		cfg:             cfg,
		newNetron:       o.newNetron,
		tolerate:        o.tolerate,
		shutdownTimeout: o.shutdownTimeout,
		signals:         o.signals,
		modules:         slices.Clone(o.modules),
		ready:           make(chan struct{}),
		done:            make(chan struct{}),
	}
	if a.newNetron == nil {
		a.newNetron = netron.New
	}
	if a.shutdownTimeout <= 0 {
		a.shutdownTimeout = cfg.ShutdownTimeout
	}
	if a.shutdownTimeout <= 0 {
		a.shutdownTimeout = DefaultShutdownTimeout
	}
	if len(a.signals) == 0 {
		a.signals = []os.Signal{os.Interrupt, syscall.SIGTERM}
	}
	// 1. Logger.
	a.logger = o.logger
	if a.logger == nil {
		w := o.logOutput
		if w == nil {
			w = os.Stderr
		}
		hopts := &slog.HandlerOptions{Level: cfg.Logger.slogLevel()}
		if cfg.Logger.Format == "json" {
			a.logger = slog.New(slog.NewJSONHandler(w, hopts))
		} else {
			a.logger = slog.New(slog.NewTextHandler(w, hopts))
		}
		a.flush = flusher(w)
	} else {
		a.flush = flusher(a.logger.Handler())
	}
	// 2. Config (validated above). 3. Netron registered, not created.
	a.logger.Debug("app: netron registered (created on first access)")
	return a, nil
}

// flusher returns the Flush or Sync method of v, or nil.
func flusher(v any) func() error {
	switch f := v.(type) {
	case interface{ Flush() error }:
		return f.Flush
	case interface{ Sync() error }:
		return f.Sync
	}
	return nil
}

// Register adds modules; they start in the order they were registered.
// It fails with ErrAlreadyStarted once Start has been called.
func (a *App) Register(m ...Module) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state != stateNew {
		return ErrAlreadyStarted
	}
	a.modules = append(a.modules, m...)
	return nil
}

// Config returns the application's configuration; modules read their
// sections from it (Config.Section).
func (a *App) Config() *Config { return a.cfg }

// Logger returns the application's logger.
func (a *App) Logger() *slog.Logger { return a.logger }

// Ready is closed when Start has succeeded.
func (a *App) Ready() <-chan struct{} { return a.ready }

// Done is closed when the shutdown has finished: every module stopped, the
// Netron stopped, the logger flushed.
func (a *App) Done() <-chan struct{} { return a.done }

// NetronCreated reports whether the Netron has been created (accessed).
func (a *App) NetronCreated() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.node != nil
}

// NetronErr returns why the Netron could not start, when
// TolerateNetronFailure let the application start without it; nil
// otherwise.
func (a *App) NetronErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.netronErr
}

// Netron returns the application's Netron, creating it on first access
// with the configuration's netron key (and the application's logger). A
// Netron created before or while the application starts is started by
// Start, after the modules; one created while the application runs is
// started at once. Once the shutdown has begun it fails with ErrStopped: a
// module that needs the Netron in its Stop keeps the one it got.
func (a *App) Netron() (*netron.Node, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state >= stateStopping {
		return nil, ErrStopped
	}
	if a.node == nil {
		cfg := a.cfg.Netron
		if cfg.Logger == nil {
			cfg.Logger = a.logger
		}
		node, err := a.newNetron(cfg)
		if err != nil {
			return nil, fmt.Errorf("app: create netron: %w", err)
		}
		registerTasks(node)
		a.node = node
		a.logger.Info("app: netron created", "id", node.ID())
	}
	if a.state == stateRunning && !a.nodeStarted {
		if a.netronErr == nil {
			a.startNetronLocked(context.Background())
		}
		if a.netronErr != nil && !a.tolerate {
			return nil, a.netronErr
		}
	}
	return a.node, nil
}

// startNetronLocked starts the created Netron; a.mu is held. The error is
// kept in a.netronErr.
func (a *App) startNetronLocked(ctx context.Context) {
	if err := a.node.Start(ctx); err != nil {
		a.netronErr = fmt.Errorf("%w: %w", ErrNetronStart, err)
		if a.tolerate {
			a.logger.Error("app: netron failed to start; continuing without it (TolerateNetronFailure)", "err", err)
		} else {
			a.logger.Error("app: netron failed to start", "err", err)
		}
		return
	}
	a.nodeStarted = true
	if url := a.node.URL(); url != "" {
		a.logger.Info("app: netron started", "id", a.node.ID(), "url", url)
	} else {
		a.logger.Info("app: netron started", "id", a.node.ID(), "server", false)
	}
}

// Start starts the application: the modules in registration order, then
// the Netron if it was accessed. When a module or the Netron fails, what
// already started is stopped in reverse order and the error returned; the
// application cannot be started again.
func (a *App) Start(ctx context.Context) error {
	a.lc.Lock()
	a.mu.Lock()
	switch a.state {
	case stateNew:
	case stateStopping, stateStopped:
		a.mu.Unlock()
		a.lc.Unlock()
		return ErrStopped
	default:
		a.mu.Unlock()
		a.lc.Unlock()
		return ErrAlreadyStarted
	}
	a.state = stateStarting
	mods := slices.Clone(a.modules)
	a.mu.Unlock()

	a.logger.Info("app: starting", "modules", len(mods))
	// 4. User modules.
	for i, m := range mods {
		err := ctx.Err()
		if err == nil {
			err = m.Start(ctx)
		}
		if err != nil {
			err = fmt.Errorf("app: start module %s: %w", moduleName(m), err)
			a.logger.Error("app: module failed to start", "module", moduleName(m), "err", err)
			return a.abort(ctx, err)
		}
		a.mu.Lock()
		a.started = i + 1
		a.mu.Unlock()
		a.logger.Info("app: module started", "module", moduleName(m))
	}
	// 5. Netron, if accessed.
	a.mu.Lock()
	if a.node != nil {
		a.startNetronLocked(ctx)
		if a.netronErr != nil && !a.tolerate {
			err := a.netronErr
			a.mu.Unlock()
			return a.abort(ctx, err)
		}
	} else {
		a.logger.Debug("app: netron not accessed; not created")
	}
	// 6. Ready.
	a.state = stateRunning
	a.mu.Unlock()
	close(a.ready)
	a.logger.Info("app: ready")
	a.lc.Unlock()
	return nil
}

// abort stops what a failed Start started and returns err (joined with
// the errors of stopping). a.lc is held and released.
func (a *App) abort(ctx context.Context, err error) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.shutdownTimeout)
	defer cancel()
	a.launchStop(sctx)
	a.lc.Unlock()
	return errors.Join(err, a.waitStop(sctx))
}

// Stop shuts the application down: the modules that started stop in
// reverse order, then the Netron, then the logger is flushed. ctx bounds
// the shutdown: when it ends first, Stop returns an error matching
// ErrShutdownTimeout while the shutdown goes on in the background (Done
// says when it finishes). Stop is idempotent; calling it before Start
// releases a Netron that was created.
func (a *App) Stop(ctx context.Context) error {
	a.lc.Lock()
	a.launchStop(ctx)
	a.lc.Unlock()
	return a.waitStop(ctx)
}

// launchStop starts the shutdown unless it has started; a.lc is held.
func (a *App) launchStop(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state < stateStopping {
		a.state = stateStopping
		mods := slices.Clone(a.modules[:a.started])
		go a.shutdown(ctx, mods, a.node)
	}
}

// waitStop waits for the shutdown to finish, or ctx to end.
func (a *App) waitStop(ctx context.Context) error {
	select {
	case <-a.done:
		return a.stopErr
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrShutdownTimeout, context.Cause(ctx))
	}
}

// shutdown is the shutdown sequence. It owns the goroutine it runs in and
// closes a.done last.
func (a *App) shutdown(ctx context.Context, mods []Module, node *netron.Node) {
	a.logger.Info("app: stopping")
	var errs []error
	// 1. User modules, in reverse.
	for i := len(mods) - 1; i >= 0; i-- {
		m := mods[i]
		if err := m.Stop(ctx); err != nil {
			err = fmt.Errorf("app: stop module %s: %w", moduleName(m), err)
			a.logger.Error("app: module failed to stop", "module", moduleName(m), "err", err)
			errs = append(errs, err)
			continue
		}
		a.logger.Info("app: module stopped", "module", moduleName(m))
	}
	// 2. Netron.
	if node != nil {
		if err := node.Stop(ctx); err != nil {
			a.logger.Error("app: netron failed to stop", "err", err)
			errs = append(errs, fmt.Errorf("app: stop netron: %w", err))
		} else {
			a.logger.Info("app: netron stopped", "id", node.ID())
		}
	}
	a.mu.Lock()
	a.state = stateStopped
	a.mu.Unlock()
	// 3. Logger.
	a.logger.Info("app: stopped")
	if a.flush != nil {
		_ = a.flush() // a terminal's Sync fails harmlessly
	}
	a.stopErr = errors.Join(errs...)
	close(a.done)
}

// Run starts the application, waits until ctx ends or one of the signals
// (SIGINT, SIGTERM unless WithSignals) arrives, and shuts it down
// gracefully within the shutdown timeout. A second signal during the
// shutdown gets Go's default behaviour (the process exits). Run returns
// Start's error, or Stop's; a shutdown that completes in time returns nil.
func (a *App) Run(ctx context.Context) error {
	sigCtx, stopSignals := signal.NotifyContext(ctx, a.signals...)
	defer stopSignals()
	if err := a.Start(sigCtx); err != nil {
		return err
	}
	<-sigCtx.Done()
	stopSignals()
	a.logger.Info("app: shutting down", "reason", context.Cause(sigCtx).Error(), "timeout", a.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.shutdownTimeout)
	defer cancel()
	return a.Stop(sctx)
}

func moduleName(m Module) string {
	if n, ok := m.(Named); ok {
		return n.Name()
	}
	return fmt.Sprintf("%T", m)
}

// Func returns a module made of two functions; either may be nil.
func Func(name string, start, stop func(context.Context) error) Module {
	return &funcModule{name: name, start: start, stop: stop}
}

type funcModule struct {
	name        string
	start, stop func(context.Context) error
}

func (f *funcModule) Name() string { return f.name }

func (f *funcModule) Start(ctx context.Context) error {
	if f.start == nil {
		return nil
	}
	return f.start(ctx)
}

func (f *funcModule) Stop(ctx context.Context) error {
	if f.stop == nil {
		return nil
	}
	return f.stop(ctx)
}

// Expose returns a module that exposes v as the service qualifiedName
// ("calculator@1.0.0") on the Netron of p when it starts, and unexposes it
// when it stops: the Go counterpart of a Titan @Service class in a module.
// Accessing the Netron creates it, so it starts with the application.
// opts are Node.Expose's (rpc.Idempotent).
func Expose(p NetronProvider, qualifiedName string, v any, opts ...rpc.ExposeOption) Module {
	return &exposeModule{p: p, name: qualifiedName, v: v, opts: opts}
}

type exposeModule struct {
	p    NetronProvider
	name string
	v    any
	opts []rpc.ExposeOption
	node *netron.Node
}

func (e *exposeModule) Name() string { return "expose " + e.name }

func (e *exposeModule) Start(context.Context) error {
	node, err := e.p.Netron()
	if err != nil {
		return err
	}
	if err := node.Expose(e.name, e.v, e.opts...); err != nil {
		return err
	}
	e.node = node
	return nil
}

func (e *exposeModule) Stop(context.Context) error {
	if e.node == nil {
		return nil
	}
	return e.node.Unexpose(e.name)
}
