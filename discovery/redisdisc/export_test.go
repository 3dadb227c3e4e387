package redisdisc

// Script hashes, for fault injection in tests (EVALSHA's first argument).
var (
	BeatScriptSHA     = beatScript.Hash()
	PutScriptSHA      = putScript.Hash()
	DelScriptSHA      = delScript.Hash()
	SnapshotScriptSHA = snapshotScript.Hash()
)

// BeatScript is the heartbeat script, for BenchmarkBeatScript.
var BeatScript = beatScript
