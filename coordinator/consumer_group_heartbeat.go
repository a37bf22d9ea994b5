package coordinator

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// heartbeatError is an error code with the message Kafka sends with it.
type heartbeatError struct {
	err *kerr.Error
	msg string
}

func invalidRequest(msg string) *heartbeatError { return &heartbeatError{kerr.InvalidRequest, msg} }

// ConsumerGroupHeartbeat joins, heartbeats for and leaves a KIP-848
// consumer group (Kafka's GroupMetadataManager.consumerGroupHeartbeat):
//
//  1. the request is validated;
//  2. the group is looked up, or created by a join (epoch 0); an empty
//     classic group is replaced, keeping its offsets;
//  3. epoch -1 removes the member, -2 (static members) parks it with its
//     assignment until its session times out or its instance id rejoins;
//  4. otherwise the member is found (or created, or takes over a parked
//     static member's assignment) and its epoch checked;
//  5. its subscription is updated, and subscriptions and subscribed topics
//     are resolved again: a change bumps the group epoch;
//  6. a group epoch ahead of the target assignment epoch computes a new
//     target assignment with the group's assignor;
//  7. the member is reconciled towards its target (currentAssignment);
//  8. the answer carries the member epoch and, when it changed, was asked
//     for by a full request or the member joined, the assignment. It is
//     sent once the group's new state is durable.
func (gc *GroupCoordinator) ConsumerGroupHeartbeat(rc RequestContext, req *kmsg.ConsumerGroupHeartbeatRequest) *kmsg.ConsumerGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	resp.HeartbeatIntervalMillis = int32(gc.cfg.ConsumerHeartbeatInterval.Milliseconds())
	gc.mu.Lock()
	res, herr := gc.consumerGroupHeartbeat(rc, req, resp)
	gc.mu.Unlock()
	if herr == nil && res != nil {
		if err := gc.await(res); err != nil {
			herr = &heartbeatError{err: err}
		}
	}
	if herr != nil {
		gc.logger.Debug("consumer group heartbeat refused", "group", req.Group, "member", req.MemberID, "epoch", req.MemberEpoch, "err", herr.err, "msg", herr.msg)
		resp = req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode = herr.err.Code
		if herr.msg != "" {
			resp.ErrorMessage = kmsg.StringPtr(herr.msg)
		}
	}
	return resp
}

// validateConsumerGroupHeartbeat is
// throwIfConsumerGroupHeartbeatRequestIsInvalid.
func (gc *GroupCoordinator) validateConsumerGroupHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest) *heartbeatError {
	switch {
	case req.Group == "":
		return invalidRequest("GroupId can't be empty.")
	case req.InstanceID != nil && *req.InstanceID == "":
		return invalidRequest("InstanceId can't be empty.")
	case req.RackID != nil && *req.RackID == "":
		return invalidRequest("RackId can't be empty.")
	case req.Version >= 1 && req.MemberID == "":
		return invalidRequest("MemberId can't be empty.") // v1: the client generates its id
	}
	switch epoch := req.MemberEpoch; {
	case epoch > 0 || epoch == leaveGroupMemberEpoch:
		if req.MemberID == "" {
			return invalidRequest("MemberId can't be empty.")
		}
	case epoch == joinGroupMemberEpoch:
		if req.RebalanceTimeoutMillis == -1 {
			return invalidRequest("RebalanceTimeoutMs must be provided in first request.")
		}
		if req.Topics == nil || len(req.Topics) > 0 {
			return invalidRequest("TopicPartitions must be empty when (re-)joining.")
		}
		if req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil {
			return invalidRequest("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
		}
	case epoch == leaveGroupStaticMemberEpoch:
		// Kafka requires InstanceId here; leave checks it against the
		// member instead (see leave).
		if req.MemberID == "" {
			return invalidRequest("MemberId can't be empty.")
		}
	default:
		return invalidRequest("MemberEpoch is invalid.")
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != "" {
		if _, err := compileSubscription(*req.SubscribedTopicRegex); err != nil {
			return &heartbeatError{kerr.InvalidRegularExpression, "SubscribedTopicRegex `" + *req.SubscribedTopicRegex + "` is not a valid regular expression: " + err.Error() + "."}
		}
	}
	if req.ServerAssignor != nil && !slices.Contains(gc.cfg.ConsumerAssignors, *req.ServerAssignor) {
		return &heartbeatError{kerr.UnsupportedAssignor, "ServerAssignor " + *req.ServerAssignor + " is not supported. Supported assignors: " + strings.Join(gc.cfg.ConsumerAssignors, ", ") + "."}
	}
	return nil
}

func (gc *GroupCoordinator) consumerGroupHeartbeat(rc RequestContext, req *kmsg.ConsumerGroupHeartbeatRequest, resp *kmsg.ConsumerGroupHeartbeatResponse) (<-chan error, *heartbeatError) {
	if gc.closed {
		return nil, &heartbeatError{err: kerr.NotCoordinator}
	}
	if !gc.cfg.ConsumerProtocolEnabled {
		return nil, &heartbeatError{kerr.UnsupportedVersion, "The consumer rebalance protocol is not enabled."}
	}
	if herr := gc.validateConsumerGroupHeartbeat(req); herr != nil {
		return nil, herr
	}
	g, herr := gc.consumerGroup(req.Group, req.MemberEpoch == joinGroupMemberEpoch)
	if herr != nil {
		return nil, herr
	}
	if req.MemberEpoch < 0 {
		return g.leave(req, resp)
	}
	return g.heartbeat(rc, req, resp)
}

// consumerGroup is getOrMaybeCreateConsumerGroup: a join creates the
// group, or replaces an empty classic group of that id (its committed
// offsets stay); any other group type is not found.
func (gc *GroupCoordinator) consumerGroup(id string, create bool) (*ConsumerGroup, *heartbeatError) {
	switch g := gc.groups[id].(type) {
	case *ConsumerGroup:
		return g, nil
	case nil:
		if !create {
			// Kafka answers UNKNOWN_MEMBER_ID here so that the member
			// rejoins (the group may have been deleted under it).
			return nil, &heartbeatError{kerr.UnknownMemberID, "Group " + id + " not found."}
		}
	default:
		if !create || !g.IsEmpty() {
			return nil, &heartbeatError{kerr.GroupIDNotFound, "Group " + id + " is not a consumer group."}
		}
		gc.logger.Info("converting empty classic group to a consumer group", "group", id)
		g.stop()
	}
	g := newConsumerGroup(gc, id)
	gc.groups[id] = g
	return g, nil
}

// leave handles epochs -1 and -2 (consumerGroupLeave).
func (g *ConsumerGroup) leave(req *kmsg.ConsumerGroupHeartbeatRequest, resp *kmsg.ConsumerGroupHeartbeatResponse) (<-chan error, *heartbeatError) {
	var m *consumerMember
	if req.InstanceID == nil && req.MemberEpoch == leaveGroupStaticMemberEpoch {
		// Kafka refuses a static leave without InstanceId as
		// INVALID_REQUEST. franz-go (v1.22) sends none, so its static
		// members could never leave temporarily: accept the leave when
		// the member id names a static member.
		if m = g.members[req.MemberID]; m == nil || m.instanceID == nil {
			return nil, invalidRequest("InstanceId can't be null.")
		}
		req.InstanceID = m.instanceID
	}
	if req.InstanceID == nil {
		if m = g.members[req.MemberID]; m == nil {
			return nil, &heartbeatError{kerr.UnknownMemberID, "Member " + req.MemberID + " is not a member of group " + g.id + "."}
		}
	} else {
		if m = g.members[g.staticMembers[*req.InstanceID]]; m == nil {
			return nil, &heartbeatError{kerr.UnknownMemberID, "Instance id " + *req.InstanceID + " is unknown."}
		}
		if m.id != req.MemberID {
			return nil, &heartbeatError{kerr.FencedInstanceID, "Static member " + req.MemberID + " with instance id " + *req.InstanceID + " was fenced by member " + m.id + "."}
		}
	}
	resp.MemberID = kmsg.StringPtr(req.MemberID)
	resp.MemberEpoch = req.MemberEpoch
	if req.MemberEpoch == leaveGroupStaticMemberEpoch {
		// The member keeps its assignment for its session timeout: an
		// instance with the same id that joins in time takes it over.
		g.gc.logger.Info("static member left temporarily", "group", g.id, "member", m.id, "instance_id", *m.instanceID)
		m.previousMemberEpoch, m.memberEpoch = m.memberEpoch, leaveGroupStaticMemberEpoch
		stopTimer(m.rebalanceTimer)
		return g.persist(), nil
	}
	g.fenceMember(m, "left the group")
	return g.persist(), nil
}

// heartbeat handles joins (epoch 0) and heartbeats.
func (g *ConsumerGroup) heartbeat(rc RequestContext, req *kmsg.ConsumerGroupHeartbeatRequest, resp *kmsg.ConsumerGroupHeartbeatResponse) (<-chan error, *heartbeatError) {
	m, isNew, herr := g.member(req)
	if herr != nil {
		return nil, herr
	}
	before := g.memberRecord(m)
	bump := isNew

	// The subscription: fields left null keep their last value.
	m.clientID, m.clientHost = rc.ClientID, rc.ClientHost
	if req.RebalanceTimeoutMillis != -1 {
		m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	if req.RackID != nil {
		m.rackID = req.RackID
	}
	if req.ServerAssignor != nil && derefOr(m.serverAssignor, "") != *req.ServerAssignor {
		m.serverAssignor = req.ServerAssignor
		bump = true // the group's assignor may change
	}
	if req.SubscribedTopicNames != nil {
		names := slices.Compact(slices.Sorted(slices.Values(req.SubscribedTopicNames)))
		if !slices.Equal(names, m.subscribedNames) {
			m.subscribedNames = names
			bump = true
		}
	}
	if req.SubscribedTopicRegex != nil && derefOr(m.subscribedRegex, "") != *req.SubscribedTopicRegex {
		m.setRegex(req.SubscribedTopicRegex)
		bump = true
	}

	// Subscribed topics are resolved on every heartbeat, so a new topic
	// matching a regex, added partitions and deleted topics all start a
	// new assignment.
	if subscribed := g.resolveSubscriptions(); !maps.Equal(subscribed, g.subscribedTopics) {
		g.subscribedTopics = subscribed
		bump = true
	}
	if bump {
		g.bumpGroupEpoch()
		g.gc.logger.Info("consumer group epoch bumped", "group", g.id, "group_epoch", g.groupEpoch, "member", m.id, "new_member", isNew)
	}
	if g.groupEpoch > g.targetAssignmentEpoch {
		g.computeTargetAssignment()
	}

	var owned assignment
	if req.Topics != nil {
		owned = make(assignment)
		for _, rt := range req.Topics {
			for _, p := range rt.Partitions {
				owned.add(topicID(rt.TopicID), p)
			}
		}
	}
	prevAssigned, prevState, prevEpoch := m.assigned, m.state, m.memberEpoch
	g.removeOwnership(m)
	g.reconcile(m, owned)
	g.addOwnership(m)
	if m.state == memberUnrevoked {
		if prevState != memberUnrevoked || prevEpoch != m.memberEpoch {
			g.scheduleRebalanceTimeout(m)
		}
	} else {
		stopTimer(m.rebalanceTimer)
	}
	g.scheduleSession(m)

	resp.MemberID = kmsg.StringPtr(m.id)
	resp.MemberEpoch = m.memberEpoch
	fullRequest := req.RebalanceTimeoutMillis != -1 && (req.SubscribedTopicNames != nil || req.SubscribedTopicRegex != nil) && req.Topics != nil
	if req.MemberEpoch == joinGroupMemberEpoch || fullRequest || !m.assigned.equal(prevAssigned) {
		resp.Assignment = heartbeatAssignment(m.assigned)
	}

	if bump || !g.memberRecordEqual(before, g.memberRecord(m)) {
		return g.persist(), nil
	}
	return nil, nil
}

// member finds the heartbeating member, or makes it
// (getOrMaybeSubscribe{Dynamic,Static}ConsumerGroupMember).
func (g *ConsumerGroup) member(req *kmsg.ConsumerGroupHeartbeatRequest) (m *consumerMember, isNew bool, _ *heartbeatError) {
	join := req.MemberEpoch == joinGroupMemberEpoch
	newMember := func(id string) (*consumerMember, bool, *heartbeatError) {
		if len(g.members) >= g.gc.cfg.ConsumerMaxSize {
			return nil, false, &heartbeatError{kerr.GroupMaxSizeReached, "The consumer group has reached its maximum capacity of " + strconv.Itoa(g.gc.cfg.ConsumerMaxSize) + " members."}
		}
		if id == "" { // v0: the coordinator names the member
			id = newMemberID(derefOr(req.InstanceID, "consumer"))
		}
		m := &consumerMember{id: id, instanceID: req.InstanceID, assigned: make(assignment), pendingRevocation: make(assignment)}
		g.members[id] = m
		g.targetAssignment[id] = make(assignment)
		if m.instanceID != nil {
			g.staticMembers[*m.instanceID] = id
		}
		g.emptySinceMs = 0
		return m, true, nil
	}

	if req.InstanceID == nil {
		m = g.members[req.MemberID]
		switch {
		case m == nil && join:
			return newMember(req.MemberID)
		case m == nil:
			return nil, false, &heartbeatError{kerr.UnknownMemberID, "Member " + req.MemberID + " is not a member of group " + g.id + "."}
		case join:
			return m, false, nil // rejoin in place: its assignment is sent again
		}
		return m, false, g.checkEpoch(m, req)
	}

	instanceID := *req.InstanceID
	existing := g.members[g.staticMembers[instanceID]]
	if join {
		switch {
		case existing == nil:
			if other := g.members[req.MemberID]; other != nil {
				return nil, false, &heartbeatError{kerr.UnreleasedInstanceID, "Member " + req.MemberID + " already exists without instance id " + instanceID + "."}
			}
			return newMember(req.MemberID)
		case existing.id == req.MemberID:
			// The same member rejoins in place, having lost a
			// response; Kafka 4.0 refuses this as unreleased, which
			// leaves the member stuck until its session expires.
			return existing, false, nil
		case existing.memberEpoch != leaveGroupStaticMemberEpoch:
			return nil, false, &heartbeatError{kerr.UnreleasedInstanceID, "Static member " + existing.id + " with instance id " + instanceID + " is not released yet."}
		}
		return g.replaceStaticMember(existing, req.MemberID), false, nil
	}
	switch {
	case existing == nil:
		return nil, false, &heartbeatError{kerr.UnknownMemberID, "Instance id " + instanceID + " is unknown."}
	case existing.id != req.MemberID:
		return nil, false, &heartbeatError{kerr.FencedInstanceID, "Static member " + req.MemberID + " with instance id " + instanceID + " was fenced by member " + existing.id + "."}
	}
	return existing, false, g.checkEpoch(existing, req)
}

// replaceStaticMember hands a parked static member's assignment to the
// instance that rejoined with its instance id: no rebalance.
func (g *ConsumerGroup) replaceStaticMember(old *consumerMember, newID string) *consumerMember {
	if newID == "" {
		newID = newMemberID(*old.instanceID)
	}
	stopTimer(old.sessionTimer)
	stopTimer(old.rebalanceTimer)
	g.removeOwnership(old)
	delete(g.members, old.id)
	m := &consumerMember{
		id: newID, instanceID: old.instanceID, rackID: old.rackID,
		rebalanceTimeout: old.rebalanceTimeout, subscribedNames: old.subscribedNames,
		serverAssignor: old.serverAssignor,
		memberEpoch:    joinGroupMemberEpoch, previousMemberEpoch: joinGroupMemberEpoch,
		assigned: old.assigned, pendingRevocation: make(assignment),
	}
	m.setRegex(old.subscribedRegex)
	g.members[m.id] = m
	g.staticMembers[*m.instanceID] = m.id
	g.targetAssignment[m.id] = g.targetAssignment[old.id]
	delete(g.targetAssignment, old.id)
	g.addOwnership(m)
	g.gc.logger.Info("static member replaced", "group", g.id, "instance_id", *m.instanceID, "old_member", old.id, "member", m.id)
	return m
}

// checkEpoch is throwIfMemberEpochIsInvalid: a member ahead of the
// coordinator, or behind it, is fenced; except that a member one epoch
// behind that owns no more than its assignment lost the response that
// moved it on, and is answered again.
func (g *ConsumerGroup) checkEpoch(m *consumerMember, req *kmsg.ConsumerGroupHeartbeatRequest) *heartbeatError {
	fenced := &heartbeatError{kerr.FencedMemberEpoch, "The consumer group member has a " + map[bool]string{true: "greater", false: "smaller"}[req.MemberEpoch > m.memberEpoch] +
		" member epoch (" + strconv.Itoa(int(req.MemberEpoch)) + ") than the one known by the group coordinator (" + strconv.Itoa(int(m.memberEpoch)) + "). The member must abandon all its partitions and rejoin."}
	switch {
	case req.MemberEpoch > m.memberEpoch:
		return fenced
	case req.MemberEpoch < m.memberEpoch:
		if req.MemberEpoch != m.previousMemberEpoch || req.Topics == nil || !ownsSubsetOf(req.Topics, m.assigned) {
			return fenced
		}
	}
	return nil
}

func ownsSubsetOf(owned []kmsg.ConsumerGroupHeartbeatRequestTopic, a assignment) bool {
	for _, rt := range owned {
		for _, p := range rt.Partitions {
			if !a.contains(topicID(rt.TopicID), p) {
				return false
			}
		}
	}
	return true
}

// resolveSubscriptions is the subscription metadata of the group now: every
// existing topic some member subscribes to, by name or regex.
func (g *ConsumerGroup) resolveSubscriptions() map[string]topicMeta {
	out := make(map[string]topicMeta)
	add := func(name string) {
		if _, ok := out[name]; ok {
			return
		}
		if id, n, ok := g.gc.topics.Topic(name); ok {
			out[name] = topicMeta{ID: topicID(id), Partitions: n}
		}
	}
	var names []string // listed once, only if some member has a regex
	for _, m := range g.members {
		for _, name := range m.subscribedNames {
			add(name)
		}
		if m.regex == nil {
			continue
		}
		if names == nil {
			names = g.gc.topics.TopicNames()
		}
		for _, name := range names {
			if m.regex.MatchString(name) {
				add(name)
			}
		}
	}
	return out
}

// memberTopics resolves one member's subscription against the group's
// subscription metadata.
func (g *ConsumerGroup) memberTopics(m *consumerMember) []topicID {
	var ids []topicID
	for name, meta := range g.subscribedTopics {
		if slices.Contains(m.subscribedNames, name) || (m.regex != nil && m.regex.MatchString(name)) {
			ids = append(ids, meta.ID)
		}
	}
	slices.SortFunc(ids, compareTopicIDs)
	return ids
}

// assignorName is the group's assignor: the one most members ask for (ties
// to the first by name), else the broker's default (Kafka's
// ConsumerGroup.preferredServerAssignor).
func (g *ConsumerGroup) assignorName() string {
	votes := make(map[string]int)
	for _, m := range g.members {
		if m.serverAssignor != nil {
			votes[*m.serverAssignor]++
		}
	}
	best := ""
	for _, name := range slices.Sorted(maps.Keys(votes)) {
		if best == "" || votes[name] > votes[best] {
			best = name
		}
	}
	if best == "" && len(g.gc.cfg.ConsumerAssignors) > 0 {
		best = g.gc.cfg.ConsumerAssignors[0]
	}
	return best
}

// computeTargetAssignment is TargetAssignmentBuilder: the assignor spreads
// the subscribed partitions over the members, starting from the current
// target assignment, and the result is the target of the group epoch.
func (g *ConsumerGroup) computeTargetAssignment() {
	a := assignors[g.assignorName()]
	if a == nil {
		a = uniformAssignor{}
	}
	partitions := make(map[topicID]int32, len(g.subscribedTopics))
	for _, meta := range g.subscribedTopics {
		partitions[meta.ID] = meta.Partitions
	}
	ids := slices.Sorted(maps.Keys(g.members))
	members := make([]assignmentMember, 0, len(ids))
	for _, id := range ids {
		members = append(members, assignmentMember{id: id, subscribed: g.memberTopics(g.members[id]), current: g.targetAssignment[id]})
	}
	g.targetAssignment = a.assign(members, partitions)
	g.targetAssignmentEpoch = g.groupEpoch
	g.gc.logger.Info("consumer group target assignment computed", "group", g.id, "epoch", g.targetAssignmentEpoch, "assignor", a.name(), "members", len(members))
}

// reconcile is CurrentAssignmentBuilder.build: it moves a member towards
// its target assignment. owned is what the member reported owning, nil if
// it did not say.
func (g *ConsumerGroup) reconcile(m *consumerMember, owned assignment) {
	if m.memberEpoch == leaveGroupStaticMemberEpoch {
		return // parked until its instance rejoins
	}
	switch m.state {
	case memberStable:
		if m.memberEpoch != g.targetAssignmentEpoch {
			g.computeNextAssignment(m, owned)
		}
	case memberUnrevoked:
		// Only once the member reports owning none of the revoked
		// partitions does it move on.
		if owned != nil && !ownsAnyOf(owned, m.pendingRevocation) {
			g.computeNextAssignment(m, owned)
		}
	case memberUnreleased:
		g.computeNextAssignment(m, owned)
	}
}

func ownsAnyOf(owned, a assignment) bool {
	if owned == nil {
		return true // the member did not say: assume it still does
	}
	for t, ps := range a {
		for _, p := range ps {
			if owned.contains(t, p) {
				return true
			}
		}
	}
	return false
}

// computeNextAssignment is CurrentAssignmentBuilder.computeNextAssignment:
//   - partitions the member holds but no longer targets are revoked first:
//     it stays at its epoch, unrevoked, keeping only what it keeps;
//   - otherwise it moves to the target epoch with every target partition
//     that nobody else holds; if some are still held elsewhere it is
//     unreleased and gets them on a later heartbeat.
func (g *ConsumerGroup) computeNextAssignment(m *consumerMember, owned assignment) {
	target := g.targetAssignment[m.id]
	kept, revoke, add := make(assignment), make(assignment), make(assignment)
	unreleased := false
	for t, ps := range m.assigned {
		for _, p := range ps {
			if target.contains(t, p) {
				kept.add(t, p)
			} else {
				revoke.add(t, p)
			}
		}
	}
	for t, ps := range target {
		for _, p := range ps {
			switch {
			case kept.contains(t, p):
			case g.ownedByOther(t, p, m.id):
				unreleased = true
			default:
				add.add(t, p)
			}
		}
	}
	setEpoch := func(e int32) {
		if m.memberEpoch != e {
			m.previousMemberEpoch, m.memberEpoch = m.memberEpoch, e
		}
	}
	if len(revoke) > 0 && ownsAnyOf(owned, revoke) {
		m.state = memberUnrevoked
		m.assigned, m.pendingRevocation = kept, revoke
		return
	}
	for t, ps := range add {
		for _, p := range ps {
			kept.add(t, p)
		}
	}
	m.assigned, m.pendingRevocation = kept, make(assignment)
	m.state = memberStable
	if unreleased {
		m.state = memberUnreleased
	}
	setEpoch(g.targetAssignmentEpoch)
}

func heartbeatAssignment(a assignment) *kmsg.ConsumerGroupHeartbeatResponseAssignment {
	out := &kmsg.ConsumerGroupHeartbeatResponseAssignment{}
	out.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	for _, t := range a.topics() {
		rt := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		rt.TopicID, rt.Partitions = t, slices.Clone(a[t])
		out.Topics = append(out.Topics, rt)
	}
	return out
}

// memberRecord and memberRecordEqual tell whether a heartbeat changed
// anything worth storing.
func (g *ConsumerGroup) memberRecord(m *consumerMember) consumerMemberRecord {
	return consumerMemberRecord{
		MemberID: m.id, RackID: m.rackID, ClientID: m.clientID, ClientHost: m.clientHost,
		RebalanceTimeoutMs: m.rebalanceTimeout.Milliseconds(), SubscribedTopicNames: m.subscribedNames,
		SubscribedTopicRegex: m.subscribedRegex, ServerAssignor: m.serverAssignor, State: m.state.String(),
		MemberEpoch: m.memberEpoch, PreviousMemberEpoch: m.previousMemberEpoch,
		Assigned: m.assigned.clone(), PendingRevocation: m.pendingRevocation.clone(),
	}
}

func (g *ConsumerGroup) memberRecordEqual(a, b consumerMemberRecord) bool {
	return a.MemberID == b.MemberID && derefOr(a.RackID, "") == derefOr(b.RackID, "") &&
		a.ClientID == b.ClientID && a.ClientHost == b.ClientHost && a.RebalanceTimeoutMs == b.RebalanceTimeoutMs &&
		slices.Equal(a.SubscribedTopicNames, b.SubscribedTopicNames) &&
		derefOr(a.SubscribedTopicRegex, "") == derefOr(b.SubscribedTopicRegex, "") &&
		derefOr(a.ServerAssignor, "") == derefOr(b.ServerAssignor, "") && a.State == b.State &&
		a.MemberEpoch == b.MemberEpoch && a.PreviousMemberEpoch == b.PreviousMemberEpoch &&
		a.Assigned.equal(b.Assigned) && a.PendingRevocation.equal(b.PendingRevocation)
}
