// Package app is the application lifecycle of Netron for Go, after the
// Titan framework's: an App holds a logger, a configuration, user modules
// with Start and Stop, and a Netron (a *netron.Node) that is created
// lazily, on first access, and started and stopped with the application.
//
//	cfg, err := app.LoadConfig("app.yaml")  // YAML or JSON, then NETRON_… variables
//	a, err := app.New(app.WithConfig(cfg))
//	a.Register(app.Expose(a, "calculator@1.0.0", Calculator{}), NewMonitor(a))
//	err = a.Run(ctx)                         // until ctx ends, SIGINT or SIGTERM
//
// # Lifecycle
//
// Startup: the logger and the configuration are ready when New returns,
// and the Netron is registered but not created. Start starts the modules
// in registration order, then starts the Netron if anything accessed it
// (binding its port), and the application is ready. Shutdown runs in
// reverse: the modules stop in reverse order, the Netron stops, the logger
// is flushed.
//
// A Netron that cannot start (its port is taken) fails Start, and what had
// started is stopped again. The original's rule that "Netron failures don't
// crash the application" once let a service report healthy while nothing
// listened; TolerateNetronFailure restores it for those who want it, and
// NetronErr then reports the failure.
//
// Run waits between the two for its context to end or for SIGINT or
// SIGTERM, then shuts down within the shutdown timeout (configuration key
// shutdownTimeout, default 10 s). A second signal during the shutdown ends
// the process.
//
// # Reaching the Netron
//
// There is no dependency injection container. A module that needs the
// Netron takes it the Go way: as a constructor argument (a.Netron() creates
// it then), or through the NetronProvider accessor (*App), called when the
// module first needs it. A Netron that nothing accessed is never created:
// an application that does not use it pays nothing for it. Expose wraps
// the common case of a module that exposes one service.
//
// # Configuration
//
// LoadConfig reads a YAML or JSON file with the seed's shape under the
// netron key (id, port, server, discovery {enabled, redis {host, port,
// password}, interval, ttl}, and every other field of netron.Config by its
// JSON name), applies environment variables over it (NETRON_ then the
// field's path in upper snake case: NETRON_PORT,
// NETRON_DISCOVERY_REDIS_HOST, NETRON_REQUEST_TIMEOUT) and validates the
// result. Durations are milliseconds when they are numbers (interval: 5000,
// as in Titan) or Go durations when they are strings ("5s"). An invalid
// value fails with a *ConfigError that names the field and where the value
// came from ("invalid config: netron.port (app.yaml:3): 70000 is not a TCP
// port (0-65535)"); unknown keys under netron are errors too. Other
// top-level keys are sections for the application's own modules
// (Config.Section).
//
// A Netron created by an App answers one task besides Netron's own:
// TaskListPeers, the peers it is connected to (`netron peers`).
package app
