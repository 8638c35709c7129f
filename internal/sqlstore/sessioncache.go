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
// delay: a revoked session, a disabled user or a changed role is seen by the very next
// request, as without it.
//
// What tells is SQLite's data version (PRAGMA data_version), read on a connection of its own
// that never writes: its value changes whenever another connection, of this process or
// another, has committed since the last read. Each entry keeps the version read before the
// session was (so a commit between the two makes the entry stale, never the reverse); a hit
// reads the version again and must find the same. Reading it is a read transaction's start
// and a one-row statement, ~4 µs against ~13 µs for the joined read and its 23 columns (the
// hot path of every signed-in request; a third of a forward-auth check's CPU under load).
//
// Any commit makes every entry stale, so the cache helps where reads outnumber writes: the
// forward-auth checks and pages of people at work. It costs little elsewhere:
//   - a session is kept from its second read on: the first only notes its ID (seen), so the
//     sign-in flows, read once each, never pay for the version nor for a copy (with every
//     read cached, the TOTP step lost a quarter of its rate); and only a signed-in session
//     is kept, not a flow (read a few times, then gone);
//   - the version connection is one, and a read that finds it busy reads the database as
//     without a cache, instead of queueing behind the others.
//
// PostgreSQL has no such version (other nodes commit unseen), so it has no cache: its nodes
// read the session each time.
type sessionCache struct {
	mu   sync.Mutex // serializes the version connection
	conn driver.Conn
	stmt driver.StmtQueryContext
	dest []driver.Value

	emu     sync.RWMutex
	entries map[string]*cachedSession
	seen    map[string]struct{} // IDs read once, not (yet) kept

	hits atomic.Int64 // for tests
}

type cachedSession struct {
	version int64
	sess    latchkey.Session
	user    latchkey.User
}

// maxCachedSessions bounds the cache (a few hundred bytes each); past it, an entry is dropped
// for each new one. maxSeenSessions bounds the IDs read once; past it, they are forgotten.
const (
	maxCachedSessions = 10000
	maxSeenSessions   = 10000
)

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
	return &sessionCache{conn: conn, stmt: q, dest: make([]driver.Value, 1), entries: make(map[string]*cachedSession), seen: make(map[string]struct{})}, nil
}

// versionLocked reads the database's data version on the cache's connection; c.mu is held.
func (c *sessionCache) versionLocked() (int64, error) {
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
// has not changed since. Otherwise, when the read that follows should be kept, it returns
// fill true and the version to keep it under (read now, before that read).
func (c *sessionCache) get(id string) (sess *latchkey.Session, u *latchkey.User, version int64, fill bool) {
	c.emu.RLock()
	e := c.entries[id]
	_, seen := c.seen[id]
	c.emu.RUnlock()
	if e == nil && !seen {
		c.emu.Lock()
		if len(c.seen) >= maxSeenSessions {
			clear(c.seen)
		}
		c.seen[id] = struct{}{}
		c.emu.Unlock()
		return nil, nil, 0, false
	}
	if !c.mu.TryLock() {
		return nil, nil, 0, false
	}
	v, err := c.versionLocked()
	c.mu.Unlock()
	if err != nil {
		return nil, nil, 0, false
	}
	if e == nil || e.version != v {
		return nil, nil, v, true
	}
	c.hits.Add(1)
	s, user := e.sess, e.user
	s.AMR = slices.Clone(e.sess.AMR)
	return &s, &user, v, false
}

// put stores the session and user read after version was, if the session is signed in: a
// sign-in flow's reads end with it, minutes at most later.
func (c *sessionCache) put(version int64, sess *latchkey.Session, u *latchkey.User) {
	if sess.State != latchkey.StateAuthenticated {
		return
	}
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
	delete(c.seen, sess.ID)
}

// drop forgets the session id, gone from the database.
func (c *sessionCache) drop(id string) {
	c.emu.Lock()
	delete(c.entries, id)
	delete(c.seen, id)
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
	clear(c.entries)
	clear(c.seen)
	c.emu.Unlock()
}
