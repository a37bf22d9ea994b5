package coordinator

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
)

// topicID is a topic's id. It is stored as hex text so that it can key a
// JSON object.
type topicID [16]byte

func (id topicID) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(id[:])), nil }

func (id *topicID) UnmarshalText(b []byte) error {
	if len(b) != 32 {
		return fmt.Errorf("topic id %q: want 32 hex digits", b)
	}
	_, err := hex.Decode(id[:], b)
	return err
}

func compareTopicIDs(a, b topicID) int { return bytes.Compare(a[:], b[:]) }

// assignment is a set of partitions by topic id, each list sorted (Kafka's
// Map<Uuid, Set<Integer>>). Topics without partitions are left out.
type assignment map[topicID][]int32

func (a assignment) clone() assignment {
	out := make(assignment, len(a))
	for t, ps := range a {
		out[t] = slices.Clone(ps)
	}
	return out
}

func (a assignment) equal(b assignment) bool {
	return maps.EqualFunc(a, b, slices.Equal[[]int32])
}

func (a assignment) contains(t topicID, p int32) bool {
	_, ok := slices.BinarySearch(a[t], p)
	return ok
}

func (a assignment) add(t topicID, p int32) {
	ps := a[t]
	if i, ok := slices.BinarySearch(ps, p); !ok {
		a[t] = slices.Insert(ps, i, p)
	}
}

func (a assignment) remove(t topicID, p int32) {
	ps := a[t]
	if i, ok := slices.BinarySearch(ps, p); ok {
		ps = slices.Delete(ps, i, i+1)
		if len(ps) == 0 {
			delete(a, t)
		} else {
			a[t] = ps
		}
	}
}

func (a assignment) size() int {
	n := 0
	for _, ps := range a {
		n += len(ps)
	}
	return n
}

// topics lists a's topic ids in order, so that iteration is deterministic.
func (a assignment) topics() []topicID {
	return slices.SortedFunc(maps.Keys(a), compareTopicIDs)
}

// assignmentMember is what an assignor knows of a member (Kafka's
// MemberSubscription plus its current target assignment in GroupSpec).
type assignmentMember struct {
	id         string
	subscribed []topicID // existing topics only, sorted
	current    assignment
}

// partitionAssignor is Kafka's ConsumerGroupPartitionAssignor: the
// coordinator's server-side assignors, picked by ServerAssignor.
type partitionAssignor interface {
	name() string
	// assign returns every member's new target assignment; members must be
	// sorted by id and partitions holds each subscribed topic's count.
	assign(members []assignmentMember, partitions map[topicID]int32) map[string]assignment
}

// assignors are the assignors the coordinator knows, by name; which of them
// a broker offers is group.consumer.assignors.
var assignors = map[string]partitionAssignor{
	"uniform": uniformAssignor{},
	"range":   rangeAssignor{},
}

// uniformAssignor is Kafka's UniformAssignor: every member gets about the
// same number of partitions across all the topics it subscribes to, and
// keeps what it has where balance allows (sticky).
//
//  1. Each member keeps the partitions of its current assignment that
//     still exist and that it still subscribes to.
//  2. Every other partition goes, in topic and partition order, to the
//     least loaded subscribed member (ties to the first by id).
//  3. While a member has at least two partitions more than another member
//     that subscribes to one of them, one of them moves. Only as many
//     partitions move as balance requires; with one subscription for all
//     members the counts end up at most one apart.
type uniformAssignor struct{}

func (uniformAssignor) name() string { return "uniform" }

func (uniformAssignor) assign(members []assignmentMember, partitions map[topicID]int32) map[string]assignment {
	out := make(map[string]assignment, len(members))
	load := make(map[string]int, len(members))
	subscribers := make(map[topicID][]string) // in member order
	subscribes := make(map[string]map[topicID]bool, len(members))
	for _, m := range members {
		out[m.id] = make(assignment)
		subscribes[m.id] = make(map[topicID]bool, len(m.subscribed))
		for _, t := range m.subscribed {
			if _, ok := partitions[t]; ok {
				subscribers[t] = append(subscribers[t], m.id)
				subscribes[m.id][t] = true
			}
		}
	}

	// 1. Sticky: keep what is still valid, each partition once.
	taken := make(map[topicID]map[int32]bool)
	for _, m := range members {
		for _, t := range m.current.topics() {
			if !subscribes[m.id][t] {
				continue
			}
			for _, p := range m.current[t] {
				if p >= partitions[t] || taken[t][p] {
					continue
				}
				if taken[t] == nil {
					taken[t] = make(map[int32]bool)
				}
				taken[t][p] = true
				out[m.id].add(t, p)
				load[m.id]++
			}
		}
	}

	// 2. The rest to the least loaded subscriber.
	for _, t := range slices.SortedFunc(maps.Keys(subscribers), compareTopicIDs) {
		subs := subscribers[t]
		for p := range partitions[t] {
			if taken[t][p] {
				continue
			}
			best := subs[0]
			for _, id := range subs[1:] {
				if load[id] < load[best] {
					best = id
				}
			}
			out[best].add(t, p)
			load[best]++
		}
	}

	// 3. Balance: move from the most to the least loaded member until no
	// move helps.
	order := make([]string, len(members))
	for i, m := range members {
		order[i] = m.id
	}
	for {
		slices.SortStableFunc(order, func(a, b string) int { return load[b] - load[a] })
		if !moveOne(order, load, out, subscribes) {
			return out
		}
	}
}

// moveOne moves one partition from a member to one with at least two
// fewer that subscribes to its topic; order is sorted by load, descending.
func moveOne(order []string, load map[string]int, out map[string]assignment, subscribes map[string]map[topicID]bool) bool {
	for _, from := range order {
		for j := len(order) - 1; j >= 0; j-- {
			to := order[j]
			if load[from]-load[to] < 2 {
				break
			}
			a := out[from]
			topics := a.topics()
			for i := len(topics) - 1; i >= 0; i-- {
				t := topics[i]
				if !subscribes[to][t] {
					continue
				}
				ps := a[t]
				p := ps[len(ps)-1]
				a.remove(t, p)
				out[to].add(t, p)
				load[from]--
				load[to]++
				return true
			}
		}
	}
	return false
}

// rangeAssignor is Kafka's RangeAssignor for KIP-848 groups: topic by
// topic, the subscribers (by member id) get contiguous ranges of about
// partitions/subscribers each, the first partitions%subscribers of them
// one more, so that co-partitioned topics are assigned alike. It is sticky
// as Kafka's is: a member keeps its lowest current partitions up to its
// quota (and one more while extra partitions are left to give), and only
// the rest is handed out in ranges.
type rangeAssignor struct{}

func (rangeAssignor) name() string { return "range" }

func (rangeAssignor) assign(members []assignmentMember, partitions map[topicID]int32) map[string]assignment {
	out := make(map[string]assignment, len(members))
	subscribers := make(map[topicID][]*assignmentMember)
	for i := range members {
		m := &members[i]
		out[m.id] = make(assignment)
		for _, t := range m.subscribed {
			if _, ok := partitions[t]; ok {
				subscribers[t] = append(subscribers[t], m)
			}
		}
	}
	for _, t := range slices.SortedFunc(maps.Keys(subscribers), compareTopicIDs) {
		subs := subscribers[t]
		n := int(partitions[t])
		quota := n / len(subs)
		extra := n % len(subs)
		taken := make([]bool, n)
		type unfilled struct {
			id        string
			remaining int
		}
		var pending []unfilled
		for _, m := range subs {
			var current []int32
			for _, p := range m.current[t] {
				if int(p) < n {
					current = append(current, p) // sorted already
				}
			}
			keep := min(len(current), quota)
			for _, p := range current[:keep] {
				taken[p] = true
				out[m.id].add(t, p)
			}
			remaining := quota - len(current)
			if remaining < 0 && extra > 0 {
				extra--
				p := current[quota]
				taken[p] = true
				out[m.id].add(t, p)
				continue
			}
			pending = append(pending, unfilled{m.id, remaining})
		}
		next := 0
		for _, u := range pending {
			remaining := u.remaining
			if extra > 0 {
				remaining++
				extra--
			}
			for ; remaining > 0; remaining-- {
				for taken[next] {
					next++
				}
				taken[next] = true
				out[u.id].add(t, int32(next))
			}
		}
	}
	return out
}
