package coordinator

import (
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Member epochs with a meaning of their own (Kafka's ConsumerGroupHeartbeatRequest).
const (
	joinGroupMemberEpoch          int32 = 0  // a member (re)joins
	leaveGroupMemberEpoch         int32 = -1 // a member leaves
	leaveGroupStaticMemberEpoch   int32 = -2 // a static member leaves for now and keeps its assignment
	consumerMemberTypeConsumer          = 1  // ConsumerGroupDescribe v1 MemberType
	consumerGroupProtocolConsumer       = "consumer"
)

// consumerGroupState is a ConsumerGroup's state (Kafka's ConsumerGroupState),
// derived from the group rather than stored:
//
//	Empty        no members
//	Assigning    the group epoch is ahead of the target assignment epoch: a
//	             member joined, left or changed its subscription, or a
//	             subscribed topic changed
//	Reconciling  a member has not reached the target assignment yet
//	Stable       every member has reached the target assignment
//	Dead         the group is being deleted
type consumerGroupState int8

const (
	consumerEmpty consumerGroupState = iota
	consumerAssigning
	consumerReconciling
	consumerStable
	consumerDead
)

func (s consumerGroupState) String() string {
	return [...]string{"Empty", "Assigning", "Reconciling", "Stable", "Dead"}[s]
}

// memberState is where a member is in reaching its target assignment
// (Kafka's MemberState, driven by CurrentAssignmentBuilder):
//
//	stable      the member has its target assignment at the target epoch
//	unrevoked   the member must give up partitionsPendingRevocation first;
//	            it stays at its epoch until it reports that it owns none of
//	            them, and is fenced after its rebalance timeout
//	unreleased  the member is at the target epoch but some partitions of
//	            its target are still owned by others; it gets them once
//	            they are released
type memberState int8

const (
	memberStable memberState = iota
	memberUnrevoked
	memberUnreleased
)

func (s memberState) String() string {
	return [...]string{"stable", "unrevoked", "unreleased"}[s]
}

// ConsumerGroup is a KIP-848 consumer group (Kafka's ConsumerGroup): the
// coordinator computes a target assignment whenever the group epoch moves
// and reconciles each member towards its part of it, one heartbeat at a
// time.
type ConsumerGroup struct {
	gc *GroupCoordinator
	id string

	dead                  bool
	groupEpoch            int32 // bumped by every change of members, subscriptions or subscribed topics
	targetAssignmentEpoch int32 // the group epoch targetAssignment was computed for
	emptySinceMs          int64 // when the last member left; offset retention counts from it
	// rebalanceStartMs is when the running rebalance began: the group epoch
	// was bumped while none ran. -1 when none runs. In memory only, for
	// metrics: a group loaded mid-rebalance finishes it uncounted.
	rebalanceStartMs int64

	members          map[string]*consumerMember
	staticMembers    map[string]string     // group.instance.id → member id
	targetAssignment map[string]assignment // member id → its target
	// partitionOwners maps a partition to the member that holds it, as
	// assigned or pending revocation (Kafka tracks the owner's epoch): a
	// partition is given to its next owner only once released.
	partitionOwners map[topicID]map[int32]string
	// subscribedTopics is the subscription metadata the target assignment
	// was computed from: topic name → id and partition count of every
	// existing topic some member subscribes to.
	subscribedTopics map[string]topicMeta
}

type topicMeta struct {
	ID         topicID `json:"id"`
	Partitions int32   `json:"partitions"`
}

// consumerMember is a ConsumerGroupMember.
type consumerMember struct {
	id               string
	instanceID       *string
	rackID           *string
	clientID         string
	clientHost       string
	rebalanceTimeout time.Duration
	subscribedNames  []string // sorted
	subscribedRegex  *string
	serverAssignor   *string

	state               memberState
	memberEpoch         int32
	previousMemberEpoch int32
	assigned            assignment
	pendingRevocation   assignment

	regex          *regexp.Regexp // subscribedRegex compiled for a full match
	sessionTimer   *time.Timer
	rebalanceTimer *time.Timer // runs while unrevoked
}

// consumerRecord is a consumer group's persisted form (Kafka's
// ConsumerGroupMetadata, ConsumerGroupMemberMetadata,
// ConsumerGroupTargetAssignment* and ConsumerGroupCurrentMemberAssignment
// records, folded into one document).
type consumerRecord struct {
	GroupEpoch            int32                  `json:"group_epoch"`
	TargetAssignmentEpoch int32                  `json:"target_assignment_epoch"`
	EmptySinceMs          int64                  `json:"empty_since_ms,omitempty"`
	SubscribedTopics      map[string]topicMeta   `json:"subscribed_topics,omitempty"`
	Members               []consumerMemberRecord `json:"members,omitempty"`
}

type consumerMemberRecord struct {
	MemberID             string     `json:"member_id"`
	InstanceID           *string    `json:"instance_id,omitempty"`
	RackID               *string    `json:"rack_id,omitempty"`
	ClientID             string     `json:"client_id"`
	ClientHost           string     `json:"client_host"`
	RebalanceTimeoutMs   int64      `json:"rebalance_timeout_ms"`
	SubscribedTopicNames []string   `json:"subscribed_topic_names,omitempty"`
	SubscribedTopicRegex *string    `json:"subscribed_topic_regex,omitempty"`
	ServerAssignor       *string    `json:"server_assignor,omitempty"`
	State                string     `json:"state"`
	MemberEpoch          int32      `json:"member_epoch"`
	PreviousMemberEpoch  int32      `json:"previous_member_epoch"`
	Assigned             assignment `json:"assigned,omitempty"`
	PendingRevocation    assignment `json:"pending_revocation,omitempty"`
	TargetAssignment     assignment `json:"target_assignment,omitempty"`
}

func newConsumerGroup(gc *GroupCoordinator, id string) *ConsumerGroup {
	return &ConsumerGroup{
		gc:               gc,
		id:               id,
		emptySinceMs:     gc.now().UnixMilli(),
		rebalanceStartMs: -1,
		members:          make(map[string]*consumerMember),
		staticMembers:    make(map[string]string),
		targetAssignment: make(map[string]assignment),
		partitionOwners:  make(map[topicID]map[int32]string),
		subscribedTopics: make(map[string]topicMeta),
	}
}

// loadConsumerGroup rebuilds a stored group as it was: members keep their
// epochs and assignments and get a fresh session timeout, as Kafka does
// when a coordinator loads its partitions.
func loadConsumerGroup(gc *GroupCoordinator, id string, rec *consumerRecord) *ConsumerGroup {
	g := newConsumerGroup(gc, id)
	g.groupEpoch, g.targetAssignmentEpoch, g.emptySinceMs = rec.GroupEpoch, rec.TargetAssignmentEpoch, rec.EmptySinceMs
	if rec.SubscribedTopics != nil {
		g.subscribedTopics = rec.SubscribedTopics
	}
	for _, mr := range rec.Members {
		m := &consumerMember{
			id: mr.MemberID, instanceID: mr.InstanceID, rackID: mr.RackID,
			clientID: mr.ClientID, clientHost: mr.ClientHost,
			rebalanceTimeout: time.Duration(mr.RebalanceTimeoutMs) * time.Millisecond,
			subscribedNames:  mr.SubscribedTopicNames, serverAssignor: mr.ServerAssignor,
			memberEpoch: mr.MemberEpoch, previousMemberEpoch: mr.PreviousMemberEpoch,
			assigned: orEmpty(mr.Assigned), pendingRevocation: orEmpty(mr.PendingRevocation),
		}
		switch mr.State {
		case memberUnrevoked.String():
			m.state = memberUnrevoked
		case memberUnreleased.String():
			m.state = memberUnreleased
		}
		m.setRegex(mr.SubscribedTopicRegex)
		g.members[m.id] = m
		if m.instanceID != nil {
			g.staticMembers[*m.instanceID] = m.id
		}
		g.targetAssignment[m.id] = orEmpty(mr.TargetAssignment)
		g.addOwnership(m)
		g.scheduleSession(m)
		if m.state == memberUnrevoked {
			g.scheduleRebalanceTimeout(m)
		}
	}
	return g
}

func orEmpty(a assignment) assignment {
	if a == nil {
		return make(assignment)
	}
	return a
}

func (g *ConsumerGroup) record() storedGroup {
	rec := &consumerRecord{
		GroupEpoch: g.groupEpoch, TargetAssignmentEpoch: g.targetAssignmentEpoch,
		EmptySinceMs: g.emptySinceMs, SubscribedTopics: g.subscribedTopics,
	}
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		rec.Members = append(rec.Members, consumerMemberRecord{
			MemberID: m.id, InstanceID: m.instanceID, RackID: m.rackID,
			ClientID: m.clientID, ClientHost: m.clientHost,
			RebalanceTimeoutMs:   m.rebalanceTimeout.Milliseconds(),
			SubscribedTopicNames: m.subscribedNames, SubscribedTopicRegex: m.subscribedRegex,
			ServerAssignor: m.serverAssignor, State: m.state.String(),
			MemberEpoch: m.memberEpoch, PreviousMemberEpoch: m.previousMemberEpoch,
			Assigned: m.assigned, PendingRevocation: m.pendingRevocation,
			TargetAssignment: g.targetAssignment[m.id],
		})
	}
	return storedGroup{Type: groupTypeConsumer, Consumer: rec}
}

func (g *ConsumerGroup) Type() string         { return groupTypeConsumer }
func (g *ConsumerGroup) ProtocolType() string { return consumerGroupProtocolConsumer }
func (g *ConsumerGroup) IsEmpty() bool        { return len(g.members) == 0 }
func (g *ConsumerGroup) State() string        { return g.state().String() }

func (g *ConsumerGroup) emptySince() (int64, bool) { return g.emptySinceMs, len(g.members) == 0 }

// state is ConsumerGroup.maybeUpdateGroupState, computed on demand.
func (g *ConsumerGroup) state() consumerGroupState {
	switch {
	case g.dead:
		return consumerDead
	case len(g.members) == 0:
		return consumerEmpty
	case g.groupEpoch > g.targetAssignmentEpoch:
		return consumerAssigning
	}
	for _, m := range g.members {
		if m.memberEpoch != g.targetAssignmentEpoch || m.state != memberStable {
			return consumerReconciling
		}
	}
	return consumerStable
}

func (g *ConsumerGroup) stop() {
	g.dead = true
	g.rebalanceStartMs = -1
	for _, m := range g.members {
		stopTimer(m.sessionTimer)
		stopTimer(m.rebalanceTimer)
	}
}

// validateOffsetCommit is ConsumerGroup.validateOffsetCommit: the admin
// client or a consumer without group management (epoch < 0) may commit
// only while the group is empty; a member must exist, use OffsetCommit v9+
// unless committing transactionally, and commit at its current epoch.
func (g *ConsumerGroup) validateOffsetCommit(memberID string, _ *string, memberEpoch int32, transactional bool, version int16) *kerr.Error {
	if g.dead {
		return kerr.CoordinatorNotAvailable
	}
	if memberEpoch < 0 && len(g.members) == 0 {
		return nil
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID
	}
	if !transactional && version < 9 {
		return kerr.UnsupportedVersion // v9+ is required of KIP-848 members
	}
	if memberEpoch != m.memberEpoch {
		return kerr.StaleMemberEpoch
	}
	return nil
}

// validateOffsetFetch is ConsumerGroup.validateOffsetFetch: a fetch that
// names no member passes; a member must exist and be at its epoch.
func (g *ConsumerGroup) validateOffsetFetch(memberID string, memberEpoch int32) *kerr.Error {
	if g.dead {
		return kerr.GroupIDNotFound
	}
	if memberEpoch < 0 && memberID == "" {
		return nil
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID
	}
	if memberEpoch != m.memberEpoch {
		return kerr.StaleMemberEpoch
	}
	return nil
}

// validateOffsetDelete: a consumer group's offsets can be deleted at any
// time for topics nobody subscribes to.
func (g *ConsumerGroup) validateOffsetDelete() *kerr.Error {
	if g.dead {
		return kerr.GroupIDNotFound
	}
	return nil
}

// isSubscribedToTopic reports whether a member subscribes to topic, by
// name or through its regex.
func (g *ConsumerGroup) isSubscribedToTopic(topic string) bool {
	for _, m := range g.members {
		if slices.Contains(m.subscribedNames, topic) || (m.regex != nil && m.regex.MatchString(topic)) {
			return true
		}
	}
	return false
}

// setRegex sets a member's regex subscription; an empty regex is none. The
// broker matches a whole topic name, as RE2J's matches() does in Kafka, and
// internal topics too: Kafka resolves regexes against every topic of its
// metadata image, and clients (franz-go's Test848RegexBrokerResolves)
// expect a regex naming __consumer_offsets to be assigned it.
func (m *consumerMember) setRegex(re *string) {
	m.subscribedRegex, m.regex = nil, nil
	if re == nil || *re == "" {
		return
	}
	m.subscribedRegex = re
	m.regex, _ = compileSubscription(*re) // validated before it is set
}

func compileSubscription(re string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(re); err != nil {
		return nil, err
	}
	return regexp.Compile(`^(?:` + re + `)$`)
}

// ownership

// addOwnership records m as the owner of what it holds.
func (g *ConsumerGroup) addOwnership(m *consumerMember) {
	for _, a := range []assignment{m.assigned, m.pendingRevocation} {
		for t, ps := range a {
			owners := g.partitionOwners[t]
			if owners == nil {
				owners = make(map[int32]string)
				g.partitionOwners[t] = owners
			}
			for _, p := range ps {
				owners[p] = m.id
			}
		}
	}
}

// removeOwnership forgets m as the owner of what it holds.
func (g *ConsumerGroup) removeOwnership(m *consumerMember) {
	for _, a := range []assignment{m.assigned, m.pendingRevocation} {
		for t, ps := range a {
			owners := g.partitionOwners[t]
			for _, p := range ps {
				if owners[p] == m.id {
					delete(owners, p)
				}
			}
			if len(owners) == 0 {
				delete(g.partitionOwners, t)
			}
		}
	}
}

// ownedByOther reports whether another member than id still holds t/p.
func (g *ConsumerGroup) ownedByOther(t topicID, p int32, id string) bool {
	owner, ok := g.partitionOwners[t][p]
	return ok && owner != id
}

// timers

// scheduleSession (re)starts a member's session timeout: a member that
// stops heartbeating is removed and its partitions go to the others.
func (g *ConsumerGroup) scheduleSession(m *consumerMember) {
	stopTimer(m.sessionTimer)
	m.sessionTimer = g.gc.afterFunc(g.gc.cfg.ConsumerSessionTimeout, func() {
		if g.dead || g.members[m.id] != m {
			return
		}
		g.gc.logger.Info("consumer group member session expired", "group", g.id, "member", m.id, "instance_id", derefOr(m.instanceID, ""))
		g.fenceMember(m, "session timeout")
		g.persist()
	})
}

// scheduleRebalanceTimeout bounds how long an unrevoked member may take to
// revoke: after its rebalance timeout, still unrevoked at the same epoch,
// it is fenced (Kafka's scheduleConsumerGroupRebalanceTimeout).
func (g *ConsumerGroup) scheduleRebalanceTimeout(m *consumerMember) {
	stopTimer(m.rebalanceTimer)
	epoch := m.memberEpoch
	m.rebalanceTimer = g.gc.afterFunc(m.rebalanceTimeout, func() {
		if g.dead || g.members[m.id] != m || m.state != memberUnrevoked || m.memberEpoch != epoch {
			return
		}
		g.gc.logger.Info("consumer group member did not revoke in its rebalance timeout", "group", g.id, "member", m.id, "epoch", epoch)
		g.fenceMember(m, "rebalance timeout")
		g.persist()
	})
}

// fenceMember removes a member and bumps the group epoch so that the next
// heartbeat computes a target assignment without it; the caller persists.
func (g *ConsumerGroup) fenceMember(m *consumerMember, reason string) {
	stopTimer(m.sessionTimer)
	stopTimer(m.rebalanceTimer)
	g.removeOwnership(m)
	delete(g.members, m.id)
	delete(g.targetAssignment, m.id)
	if m.instanceID != nil && g.staticMembers[*m.instanceID] == m.id {
		delete(g.staticMembers, *m.instanceID)
	}
	g.bumpGroupEpoch()
	if len(g.members) == 0 {
		g.emptySinceMs = g.gc.now().UnixMilli()
	}
	g.gc.logger.Info("consumer group member removed", "group", g.id, "member", m.id, "reason", reason, "group_epoch", g.groupEpoch)
}

// bumpGroupEpoch moves the group epoch on, which starts a rebalance unless
// one runs already: it extends to cover the new epoch too.
func (g *ConsumerGroup) bumpGroupEpoch() {
	g.groupEpoch++
	if g.rebalanceStartMs < 0 {
		g.rebalanceStartMs = g.gc.now().UnixMilli()
	}
}

// persist queues the group's record after a change (under gc.mu), first
// ending a running rebalance that the change completed: it completes when
// the group is Stable, every member at the target assignment epoch, and is
// counted once; a group left Empty ends it uncounted.
func (g *ConsumerGroup) persist() <-chan error {
	if g.rebalanceStartMs >= 0 {
		switch g.state() {
		case consumerStable:
			g.gc.rebalanceDone(groupTypeConsumer, g.rebalanceStartMs)
			g.rebalanceStartMs = -1
		case consumerEmpty, consumerDead:
			g.rebalanceStartMs = -1
		}
	}
	return g.gc.persist(g.id, g)
}

// ConsumerGroupDescribe describes consumer groups (Kafka's
// GroupMetadataManager.consumerGroupDescribe): epochs, the assignor, and
// every member with its current and target assignment. An unknown group,
// or one of another type, is GROUP_ID_NOT_FOUND.
func (gc *GroupCoordinator) ConsumerGroupDescribe(req *kmsg.ConsumerGroupDescribeRequest) *kmsg.ConsumerGroupDescribeResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, id := range req.Groups {
		sg := kmsg.NewConsumerGroupDescribeResponseGroup()
		sg.Group = id
		if req.IncludeAuthorizedOperations {
			sg.AuthorizedOperations = groupAuthorizedOperations
		}
		g, _ := gc.groups[id].(*ConsumerGroup)
		switch {
		case gc.closed:
			sg.ErrorCode = kerr.NotCoordinator.Code
		case id == "":
			sg.ErrorCode = kerr.InvalidGroupID.Code
		case g == nil || g.dead:
			sg.ErrorCode = kerr.GroupIDNotFound.Code
			msg := "Group " + id + " not found."
			if gc.groups[id] != nil {
				msg = "Group " + id + " is not a consumer group."
			}
			sg.ErrorMessage = kmsg.StringPtr(msg)
		default:
			sg.State = g.State()
			sg.Epoch = g.groupEpoch
			sg.AssignmentEpoch = g.targetAssignmentEpoch
			sg.AssignorName = g.assignorName()
			for _, mid := range slices.Sorted(maps.Keys(g.members)) {
				m := g.members[mid]
				sm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
				sm.MemberID, sm.InstanceID, sm.RackID = m.id, m.instanceID, m.rackID
				sm.MemberEpoch, sm.ClientID, sm.ClientHost = m.memberEpoch, m.clientID, m.clientHost
				sm.SubscribedTopics = slices.Clone(m.subscribedNames)
				if sm.SubscribedTopics == nil {
					sm.SubscribedTopics = []string{}
				}
				sm.SubscribedTopicRegex = m.subscribedRegex
				sm.Assignment = gc.describeAssignment(m.assigned)
				sm.TargetAssignment = gc.describeAssignment(g.targetAssignment[m.id])
				sm.MemberType = consumerMemberTypeConsumer
				sg.Members = append(sg.Members, sm)
			}
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}

// describeAssignment names an assignment's topics; a topic deleted since
// is left out.
func (gc *GroupCoordinator) describeAssignment(a assignment) kmsg.Assignment {
	out := kmsg.NewAssignment()
	out.TopicPartitions = []kmsg.AssignmentTopicPartition{}
	for _, t := range a.topics() {
		name, _, ok := gc.topics.TopicByID(t)
		if !ok {
			continue
		}
		tp := kmsg.NewAssignmentTopicPartition()
		tp.TopicID, tp.Topic, tp.Partitions = t, name, slices.Clone(a[t])
		out.TopicPartitions = append(out.TopicPartitions, tp)
	}
	return out
}
