package broker

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Fetch sessions (KIP-227, Kafka's FetchSession and FetchSessionCache): a
// consumer that fetches the same partitions over and over registers them
// once, then sends only what changed; the broker answers with only the
// partitions that have news.

const (
	fetchSessionInitialEpoch = 0  // JoinGroup-style "start a session"
	fetchSessionFinalEpoch   = -1 // "no session" / "close the session"
	// maxFetchSessions is Kafka's max.incremental.fetch.session.cache.slots.
	maxFetchSessions = 1000
)

// fetchKey names a partition in a session: by topic id for Fetch v13+, by
// name before.
type fetchKey struct {
	topicID   [16]byte
	topic     string
	partition int32
}

// sessionPartition is a partition a session fetches, with what was last
// sent for it, so an incremental response can leave it out when nothing
// changed (Kafka's CachedPartition).
type sessionPartition struct {
	key                fetchKey
	fetchOffset        int64
	maxBytes           int32
	currentLeaderEpoch int32

	sent                 bool // sent at least once in this session
	sentHighWatermark    int64
	sentLastStableOffset int64
	sentLogStartOffset   int64
}

type fetchSession struct {
	mu    sync.Mutex // held by the one request using the session
	id    int32
	epoch int32 // the epoch the next request must carry
	parts []*sessionPartition
	byKey map[fetchKey]*sessionPartition
	used  time.Time
}

type fetchSessionCache struct {
	mu       sync.Mutex
	sessions map[int32]*fetchSession
}

func newFetchSessionCache() *fetchSessionCache {
	return &fetchSessionCache{sessions: make(map[int32]*fetchSession)}
}

// create registers a new session with parts and returns it locked for the
// request that made it; nil when the cache is full of sessions used within
// the last minute (Kafka then serves sessionless).
func (c *fetchSessionCache) create(parts []*sessionPartition) *fetchSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if len(c.sessions) >= maxFetchSessions {
		var oldest *fetchSession
		for _, s := range c.sessions {
			if oldest == nil || s.used.Before(oldest.used) {
				oldest = s
			}
		}
		if now.Sub(oldest.used) < time.Minute {
			return nil
		}
		delete(c.sessions, oldest.id)
	}
	s := &fetchSession{epoch: 1, byKey: make(map[fetchKey]*sessionPartition), used: now}
	for {
		s.id = rand.Int32N(1<<31-1) + 1 // never 0, the "no session" id
		if _, taken := c.sessions[s.id]; !taken {
			break
		}
	}
	for _, p := range parts {
		s.add(p)
	}
	s.mu.Lock()
	c.sessions[s.id] = s
	return s
}

// incremental looks a session up for an incremental request with epoch and
// advances its epoch.
func (c *fetchSessionCache) incremental(id, epoch int32) (*fetchSession, *kerr.Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[id]
	switch {
	case !ok:
		return nil, kerr.FetchSessionIDNotFound
	case s.epoch != epoch:
		return nil, kerr.InvalidFetchSessionEpoch
	}
	s.epoch++
	if s.epoch < 1 { // wrapped
		s.epoch = 1
	}
	s.used = time.Now()
	return s, nil
}

func (c *fetchSessionCache) remove(id int32) {
	c.mu.Lock()
	delete(c.sessions, id)
	c.mu.Unlock()
}

func (s *fetchSession) add(p *sessionPartition) {
	if old, ok := s.byKey[p.key]; ok {
		old.fetchOffset, old.maxBytes, old.currentLeaderEpoch = p.fetchOffset, p.maxBytes, p.currentLeaderEpoch
		return
	}
	s.byKey[p.key] = p
	s.parts = append(s.parts, p)
}

func (s *fetchSession) forget(k fetchKey) {
	if _, ok := s.byKey[k]; !ok {
		return
	}
	delete(s.byKey, k)
	for i, p := range s.parts {
		if p.key == k {
			s.parts = append(s.parts[:i], s.parts[i+1:]...)
			return
		}
	}
}

// moveToEnd puts the partitions that just returned data behind the others,
// so a size-limited response does not starve the later ones (Kafka's
// FetchSession.updateByInsertionOrder).
func (s *fetchSession) moveToEnd(served map[fetchKey]bool) {
	if len(served) == 0 {
		return
	}
	kept := s.parts[:0:0]
	var moved []*sessionPartition
	for _, p := range s.parts {
		if served[p.key] {
			moved = append(moved, p)
		} else {
			kept = append(kept, p)
		}
	}
	s.parts = append(kept, moved...)
}
