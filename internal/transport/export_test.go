package transport

// SetNextID sets the id counter, for tests of the wrap-around.
func SetNextID(c *Conn, v uint32) { c.nextID.Store(v) }

// Pongs returns how many of c's keep-alive pings were answered.
func Pongs(c *Conn) uint64 { return c.pongs.Load() }
