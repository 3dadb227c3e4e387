package redisdisc

// Script hashes, for fault injection in tests (EVALSHA's first argument).
var (
	BeatScriptSHA     = beatScript.Hash()
	PutScriptSHA      = putScript.Hash()
	DelScriptSHA      = delScript.Hash()
	SnapshotScriptSHA = snapshotScript.Hash()
)

// WithLoggerForTest marks ctx as a context of a Discovery's commands.
var WithLoggerForTest = withLogger
