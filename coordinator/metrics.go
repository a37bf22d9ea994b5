package coordinator

import "time"

// GroupSummary is a read-only view of one group for metrics: what
// kafka_exporter reports per consumer group.
type GroupSummary struct {
	ID      string
	Type    string // "classic" or "consumer"
	State   string
	Members int
	// Offsets are the committed offsets by partition (a copy).
	Offsets map[TopicPartition]int64
}

func (g *ClassicGroup) memberCount() int  { return len(g.members) }
func (g *ConsumerGroup) memberCount() int { return len(g.members) }

// Describe returns every group with its state, member count and committed
// offsets, for a metrics scrape. It holds the coordinator lock while
// copying, so its cost is O(groups + committed partitions) per scrape and
// nothing per commit.
func (gc *GroupCoordinator) Describe() []GroupSummary {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	out := make([]GroupSummary, 0, len(gc.groups))
	for id, g := range gc.groups {
		s := GroupSummary{ID: id, Type: g.Type(), State: g.State(), Members: g.memberCount()}
		if offs := gc.offsets[id]; len(offs) > 0 {
			s.Offsets = make(map[TopicPartition]int64, len(offs))
			for tp, om := range offs {
				s.Offsets[tp] = om.Offset
			}
		}
		out = append(out, s)
	}
	return out
}

// rebalanceDone reports a finished rebalance to Config.OnRebalance: a
// classic group's join phase, or a consumer group's reaching Stable.
func (gc *GroupCoordinator) rebalanceDone(groupType string, startedMs int64) {
	if f := gc.cfg.OnRebalance; f != nil {
		f(groupType, time.Duration(gc.now().UnixMilli()-startedMs)*time.Millisecond)
	}
}
