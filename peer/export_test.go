package peer

// SetNextID sets the id counter, for tests of the wrap-around.
func SetNextID(c *Conn, v uint32) { c.nextID.Store(v) }
