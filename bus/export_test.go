package bus

// TopicCount returns how many topics b currently keeps (topics with at
// least one subscriber).
func TopicCount(b *Bus) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.topics)
}
