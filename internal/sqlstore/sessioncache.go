package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/latchkey/latchkey"
)

// sessionCache keeps, on SQLite, the sessions FindSessionWithUser read with their users, and
// hands one out again only while the database is exactly as it was when it was read: not a
// single commit since, by this process or any other. It is not a cache with a lifetime or a
// delay: a revoked session, a disabled user, a changed role is seen by the very next request,
// as without it.
//
// What tells is SQLite's data version (PRAGMA data_version), read on a connection of its own
// that never writes: its value changes whenever another connection, of this process or
// another, has committed since the last read. Each entry keeps the version read before the
// session was (so a commit between the two makes the entry stale, never the reverse); a hit
// reads the version again and must find the same. Reading it is a read transaction's start
// and a one-row statement, ~4 µs against ~13 µs for the joined read and its 23 columns (the
// hot path of every signed-in request; a third of a forward-auth check's CPU under load).
//
// Any write clears every entry at once, so the cache helps where reads outnumber writes, the
// forward-auth checks of applications in use. PostgreSQL has no such version (other nodes
// commit unseen), so it has no cache: its nodes read the session each time.
type sessionCache struct {
	mu   sync.Mutex // serializes the version connection
	conn driver.Conn
	stmt driver.StmtQueryContext
	dest []driver.Value

	emu     sync.RWMutex
	entries map[string]*cachedSession

	hits atomic.Int64 // for tests
}

type cachedSession struct {
	version int64
	sess    latchkey.Session
	user    latchkey.User
}

// maxCachedSessions bounds the cache (a few hundred bytes each); past it, an entry is dropped
// for each new one.
const maxCachedSessions = 10000

// newSessionCache opens the version connection with drv on name, the pool's own data source.
func newSessionCache(drv driver.Driver, name string) (*sessionCache, error) {
	conn, err := drv.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := conn.Prepare(`PRAGMA data_version`)
	if err != nil {
		conn.Close()
		return nil, err
	}
	q, ok := st.(driver.StmtQueryContext)
	if !ok {
		st.Close()
		conn.Close()
		return nil, errors.New("sqlstore: the SQLite driver's statements have no QueryContext")
	}
	return &sessionCache{conn: conn, stmt: q, dest: make([]driver.Value, 1), entries: make(map[string]*cachedSession)}, nil
}

// version reads the database's data version on the cache's connection.
func (c *sessionCache) version() (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return 0, errors.New("sqlstore: closed")
	}
	// context.Background: the statement takes microseconds, and a context that can end would
	// make the driver watch it with a goroutine.
	rows, err := c.stmt.QueryContext(context.Background(), nil)
	if err != nil {
		return 0, err
	}
	err = rows.Next(c.dest)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err == io.EOF {
		err = errors.New("sqlstore: PRAGMA data_version returned no row")
	}
	if err != nil {
		return 0, err
	}
	v, ok := c.dest[0].(int64)
	if !ok {
		return 0, errors.New("sqlstore: PRAGMA data_version is not an integer")
	}
	return v, nil
}

// get returns copies of the session id and its user when they are cached and the database
// has not changed since. Otherwise it returns the version to store a fresh read under (read
// now, before that read), and ok false; a failure to read the version gives fill false.
func (c *sessionCache) get(id string) (sess *latchkey.Session, u *latchkey.User, version int64, fill bool) {
	v, err := c.version()
	if err != nil {
		return nil, nil, 0, false
	}
	c.emu.RLock()
	e := c.entries[id]
	c.emu.RUnlock()
	if e == nil || e.version != v {
		return nil, nil, v, true
	}
	c.hits.Add(1)
	s, user := e.sess, e.user
	s.AMR = slices.Clone(e.sess.AMR)
	return &s, &user, v, false
}

// put stores the session and user read after version was.
func (c *sessionCache) put(version int64, sess *latchkey.Session, u *latchkey.User) {
	e := &cachedSession{version: version, sess: *sess, user: *u}
	e.sess.AMR = slices.Clone(sess.AMR)
	c.emu.Lock()
	defer c.emu.Unlock()
	if _, ok := c.entries[sess.ID]; !ok && len(c.entries) >= maxCachedSessions {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[sess.ID] = e
}

// drop forgets the session id, gone from the database.
func (c *sessionCache) drop(id string) {
	c.emu.Lock()
	delete(c.entries, id)
	c.emu.Unlock()
}

func (c *sessionCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.stmt.(driver.Stmt).Close()
		c.conn.Close()
		c.conn = nil
	}
	c.emu.Lock()
	c.entries = make(map[string]*cachedSession)
	c.emu.Unlock()
}
