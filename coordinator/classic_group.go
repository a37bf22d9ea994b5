package coordinator

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// classicState is a ClassicGroup's state (Kafka's ClassicGroupState):
//
//	Empty → PreparingRebalance       a member joins
//	PreparingRebalance → CompletingRebalance   every member rejoined, or the rebalance timeout
//	PreparingRebalance → Empty       nobody is left after the join phase
//	CompletingRebalance → Stable     the leader's SyncGroup carries the assignment
//	CompletingRebalance, Stable → PreparingRebalance   a member joins, leaves, changes protocols or expires
//	any → Dead                       the group is deleted
type classicState int8

const (
	stateEmpty classicState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s classicState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[s]
}

// ClassicGroup is a group of the classic rebalance protocol (Kafka's
// ClassicGroup): members join, one of them (the leader) assigns, the
// coordinator hands every member its assignment.
type ClassicGroup struct {
	gc *GroupCoordinator
	id string

	state          classicState
	stateTimestamp int64 // ms of the last state change; retention of an Empty group counts from it
	protocolType   string
	protocol       string // selected for the current generation
	generation     int32
	leader         string

	members        map[string]*classicMember
	staticMembers  map[string]string      // group.instance.id → member id (KIP-345)
	pendingMembers map[string]*time.Timer // ids handed out with MEMBER_ID_REQUIRED (KIP-394)
	pendingSync    map[string]bool        // members of this generation that have not synced yet

	initialRebalance bool        // the join phase started from Empty: the initial delay runs
	newMemberAdded   bool        // a member joined during the initial delay: extend it
	joinTimer        *time.Timer // completes the join phase
	syncTimer        *time.Timer // expires members that do not sync
}

type classicMember struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	rebalanceTimeout time.Duration
	sessionTimeout   time.Duration
	protocolType     string
	protocols        []classicProtocol
	assignment       []byte

	joinCh       chan *kmsg.JoinGroupResponse // set while a JoinGroup waits
	syncCh       chan *kmsg.SyncGroupResponse // set while a SyncGroup waits
	sessionTimer *time.Timer
}

type classicProtocol struct {
	Name     string `json:"name"`
	Metadata []byte `json:"metadata"`
}

// classicRecord is a ClassicGroup as stored (Kafka's GroupMetadataValue).
type classicRecord struct {
	ProtocolType   string                `json:"protocol_type"`
	Generation     int32                 `json:"generation"`
	Protocol       string                `json:"protocol"`
	Leader         string                `json:"leader"`
	StateTimestamp int64                 `json:"state_timestamp"`
	Members        []classicMemberRecord `json:"members"`
}

type classicMemberRecord struct {
	MemberID           string            `json:"member_id"`
	InstanceID         *string           `json:"instance_id,omitempty"`
	ClientID           string            `json:"client_id"`
	ClientHost         string            `json:"client_host"`
	RebalanceTimeoutMs int64             `json:"rebalance_timeout_ms"`
	SessionTimeoutMs   int64             `json:"session_timeout_ms"`
	Protocols          []classicProtocol `json:"protocols"`
	Assignment         []byte            `json:"assignment"`
}

func newClassicGroup(gc *GroupCoordinator, id string) *ClassicGroup {
	return &ClassicGroup{
		gc:             gc,
		id:             id,
		stateTimestamp: gc.now().UnixMilli(),
		members:        make(map[string]*classicMember),
		staticMembers:  make(map[string]string),
		pendingMembers: make(map[string]*time.Timer),
		pendingSync:    make(map[string]bool),
	}
}

// loadClassicGroup rebuilds a stored group: Stable with its members, each
// given a fresh session timeout, or Empty (ClassicGroup.fromRecords).
func loadClassicGroup(gc *GroupCoordinator, id string, rec *classicRecord) *ClassicGroup {
	g := newClassicGroup(gc, id)
	g.protocolType, g.generation, g.protocol, g.leader = rec.ProtocolType, rec.Generation, rec.Protocol, rec.Leader
	g.stateTimestamp = rec.StateTimestamp
	for _, mr := range rec.Members {
		m := &classicMember{
			id: mr.MemberID, instanceID: mr.InstanceID, clientID: mr.ClientID, clientHost: mr.ClientHost,
			rebalanceTimeout: time.Duration(mr.RebalanceTimeoutMs) * time.Millisecond,
			sessionTimeout:   time.Duration(mr.SessionTimeoutMs) * time.Millisecond,
			protocolType:     rec.ProtocolType, protocols: mr.Protocols, assignment: mr.Assignment,
		}
		g.members[m.id] = m
		if m.instanceID != nil {
			g.staticMembers[*m.instanceID] = m.id
		}
		g.scheduleSession(m)
	}
	if len(g.members) > 0 {
		g.state = stateStable
	}
	return g
}

func (g *ClassicGroup) Type() string         { return groupTypeClassic }
func (g *ClassicGroup) State() string        { return g.state.String() }
func (g *ClassicGroup) ProtocolType() string { return g.protocolType }
func (g *ClassicGroup) IsEmpty() bool        { return len(g.members) == 0 }

func (g *ClassicGroup) emptySince() (int64, bool) {
	return g.stateTimestamp, g.state == stateEmpty && g.protocolType != ""
}

func (g *ClassicGroup) record() storedGroup {
	rec := &classicRecord{
		ProtocolType: g.protocolType, Generation: g.generation, Protocol: g.protocol,
		Leader: g.leader, StateTimestamp: g.stateTimestamp,
	}
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		rec.Members = append(rec.Members, classicMemberRecord{
			MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost,
			RebalanceTimeoutMs: m.rebalanceTimeout.Milliseconds(), SessionTimeoutMs: m.sessionTimeout.Milliseconds(),
			Protocols: m.protocols, Assignment: m.assignment,
		})
	}
	return storedGroup{Type: groupTypeClassic, Classic: rec}
}

func (g *ClassicGroup) stop() {
	g.transitionTo(stateDead)
	for _, m := range g.members {
		stopTimer(m.sessionTimer)
		g.completeJoin(m, joinError(kerr.NotCoordinator))
		g.completeSync(m, syncError(kerr.NotCoordinator))
	}
	for _, t := range g.pendingMembers {
		t.Stop()
	}
	stopTimer(g.joinTimer)
	stopTimer(g.syncTimer)
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

func (g *ClassicGroup) transitionTo(s classicState) {
	g.state = s
	g.stateTimestamp = g.gc.now().UnixMilli()
}

// validateMember is ClassicGroup.validateMember: a static member's instance
// id must map to its member id, and the member must exist.
func (g *ClassicGroup) validateMember(memberID string, instanceID *string) *kerr.Error {
	if instanceID != nil {
		if existing, ok := g.staticMembers[*instanceID]; ok && existing != memberID {
			return kerr.FencedInstanceID
		}
	}
	if g.members[memberID] == nil {
		return kerr.UnknownMemberID
	}
	return nil
}

func (g *ClassicGroup) validateOffsetCommit(memberID string, instanceID *string, generation int32, transactional bool, _ int16) *kerr.Error {
	if g.state == stateDead {
		return kerr.CoordinatorNotAvailable
	}
	if generation < 0 && g.state == stateEmpty {
		return nil // the admin client or a consumer without group management
	}
	if generation >= 0 || memberID != "" || instanceID != nil {
		if err := g.validateMember(memberID, instanceID); err != nil {
			return err
		}
		if generation != g.generation {
			return kerr.IllegalGeneration
		}
	} else if !transactional && g.state != stateEmpty {
		return kerr.UnknownMemberID
	}
	if !transactional && g.state == stateCompletingRebalance {
		return kerr.RebalanceInProgress
	}
	return nil
}

func (g *ClassicGroup) validateOffsetFetch(string, int32) *kerr.Error {
	if g.state == stateDead {
		return kerr.GroupIDNotFound
	}
	return nil // classic members are not checked, for compatibility
}

func (g *ClassicGroup) validateOffsetDelete() *kerr.Error {
	if g.state == stateDead {
		return kerr.GroupIDNotFound
	}
	if g.state != stateEmpty && g.protocolType != "consumer" {
		return kerr.NonEmptyGroup
	}
	return nil
}

// isSubscribedToTopic reads the members' ConsumerProtocol subscriptions;
// other protocol types subscribe to nothing the broker can see.
func (g *ClassicGroup) isSubscribedToTopic(topic string) bool {
	if g.protocolType != "consumer" || g.protocol == "" {
		return false
	}
	for _, m := range g.members {
		var meta kmsg.ConsumerMemberMetadata
		if meta.ReadFrom(m.metadata(g.protocol)) != nil {
			continue
		}
		if slices.Contains(meta.Topics, topic) {
			return true
		}
	}
	return false
}

func (m *classicMember) metadata(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// matches reports whether a rejoin carries the member's current protocols.
func (m *classicMember) matches(protocols []classicProtocol) bool {
	return slices.EqualFunc(m.protocols, protocols, func(a, b classicProtocol) bool {
		return a.Name == b.Name && bytes.Equal(a.Metadata, b.Metadata)
	})
}

// rebalanceTimeout is the largest of the members' rebalance timeouts.
func (g *ClassicGroup) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// supportsProtocols is ClassicGroup.supportsProtocols: an empty group takes
// any non-empty protocol list; otherwise the type must match and one of the
// protocols must be supported by every member.
func (g *ClassicGroup) supportsProtocols(protocolType string, protocols []classicProtocol) bool {
	if len(g.members) == 0 {
		return protocolType != "" && len(protocols) > 0
	}
	if protocolType != g.protocolType {
		return false
	}
	candidates := g.candidateProtocols()
	return slices.ContainsFunc(protocols, func(p classicProtocol) bool { return candidates[p.Name] })
}

// candidateProtocols are the protocols every member supports.
func (g *ClassicGroup) candidateProtocols() map[string]bool {
	counts := make(map[string]int)
	for _, m := range g.members {
		for _, p := range m.protocols {
			counts[p.Name]++
		}
	}
	out := make(map[string]bool)
	for name, n := range counts {
		if n == len(g.members) {
			out[name] = true
		}
	}
	return out
}

// selectProtocol is ClassicGroup.selectProtocol: each member votes for its
// most preferred candidate, the most votes win (ties to the name first in
// order, to be deterministic).
func (g *ClassicGroup) selectProtocol() string {
	candidates := g.candidateProtocols()
	votes := make(map[string]int)
	for _, m := range g.members {
		for _, p := range m.protocols {
			if candidates[p.Name] {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, name := range slices.Sorted(maps.Keys(votes)) {
		if best == "" || votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

// newMemberID is Kafka's "<client id or instance id>-<uuid>".
func newMemberID(prefix string) string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}

// JoinGroup joins a member to a group and waits for the join phase to end
// (Kafka's GroupMetadataManager.classicGroupJoin).
func (gc *GroupCoordinator) JoinGroup(rc RequestContext, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	gc.mu.Lock()
	ch, resp := gc.joinGroup(rc, req)
	gc.mu.Unlock()
	if resp == nil {
		select {
		case resp = <-ch:
		case <-gc.done:
			resp = joinError(kerr.NotCoordinator)
		}
	}
	resp.Version = req.Version
	return resp
}

func joinError(err *kerr.Error) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.ErrorCode = err.Code
	resp.Generation = -1
	return resp
}

func (gc *GroupCoordinator) joinGroup(rc RequestContext, req *kmsg.JoinGroupRequest) (<-chan *kmsg.JoinGroupResponse, *kmsg.JoinGroupResponse) {
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	switch {
	case gc.closed:
		return nil, joinError(kerr.NotCoordinator)
	case req.Group == "":
		return nil, joinError(kerr.InvalidGroupID)
	case session < gc.cfg.GroupMinSessionTimeout || session > gc.cfg.GroupMaxSessionTimeout:
		return nil, joinError(kerr.InvalidSessionTimeout)
	}
	var g *ClassicGroup
	switch existing := gc.groups[req.Group].(type) {
	case nil:
		if req.MemberID != "" {
			return nil, joinError(kerr.UnknownMemberID)
		}
		g = newClassicGroup(gc, req.Group)
		gc.groups[req.Group] = g
	case *ClassicGroup:
		g = existing
	default:
		if !existing.IsEmpty() {
			return nil, joinError(kerr.InconsistentGroupProtocol)
		}
		// An empty consumer group turns classic, keeping its offsets
		// (Kafka converts empty groups between protocols).
		existing.stop()
		g = newClassicGroup(gc, req.Group)
		gc.groups[req.Group] = g
	}
	protocols := make([]classicProtocol, 0, len(req.Protocols))
	for _, p := range req.Protocols {
		protocols = append(protocols, classicProtocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)})
	}
	m := &classicMember{
		id: req.MemberID, instanceID: req.InstanceID, clientID: rc.ClientID, clientHost: rc.ClientHost,
		rebalanceTimeout: time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		sessionTimeout:   session, protocolType: req.ProtocolType, protocols: protocols,
	}
	if req.Version == 0 {
		m.rebalanceTimeout = session
	}
	if g.state == stateDead {
		// The group is being removed; the client finds the coordinator again.
		return nil, joinError(kerr.CoordinatorNotAvailable)
	}
	if !g.supportsProtocols(m.protocolType, protocols) {
		return nil, joinError(kerr.InconsistentGroupProtocol)
	}
	if req.MemberID == "" {
		return g.joinNewMember(m, req.Version)
	}
	return g.joinExistingMember(m)
}

// joinNewMember handles a join without a member id.
func (g *ClassicGroup) joinNewMember(m *classicMember, version int16) (<-chan *kmsg.JoinGroupResponse, *kmsg.JoinGroupResponse) {
	if m.instanceID != nil {
		m.id = newMemberID(*m.instanceID)
		if old, ok := g.staticMembers[*m.instanceID]; ok {
			return g.replaceStaticMember(old, m)
		}
	} else {
		m.id = newMemberID(m.clientID)
	}
	if len(g.members)+len(g.pendingMembers) >= g.gc.cfg.GroupMaxSize {
		return nil, joinError(kerr.GroupMaxSizeReached)
	}
	if m.instanceID == nil && version >= 4 {
		// KIP-394: hand out the id and wait for the member to come back
		// with it, so a client that never does leaves no ghost member.
		id := m.id
		g.pendingMembers[id] = g.gc.afterFunc(m.sessionTimeout, func() { g.expirePendingMember(id) })
		resp := joinError(kerr.MemberIDRequired)
		resp.MemberID = id
		return nil, resp
	}
	return g.addMemberAndRebalance(m), nil
}

func (g *ClassicGroup) expirePendingMember(id string) {
	if _, ok := g.pendingMembers[id]; !ok {
		return
	}
	delete(g.pendingMembers, id)
	if g.state == statePreparingRebalance {
		g.maybeCompleteJoinPhase()
	}
}

// joinExistingMember handles a join that names its member id.
func (g *ClassicGroup) joinExistingMember(m *classicMember) (<-chan *kmsg.JoinGroupResponse, *kmsg.JoinGroupResponse) {
	if t, ok := g.pendingMembers[m.id]; ok {
		t.Stop()
		delete(g.pendingMembers, m.id)
		return g.addMemberAndRebalance(m), nil
	}
	if err := g.validateMember(m.id, m.instanceID); err != nil {
		return nil, joinError(err)
	}
	cur := g.members[m.id]
	switch g.state {
	case statePreparingRebalance:
		return g.updateMemberAndRebalance(cur, m, "member rejoined during the rebalance"), nil
	case stateCompletingRebalance:
		if cur.matches(m.protocols) {
			// The member missed its join response: send it again.
			return nil, g.joinResponse(cur, nil)
		}
		return g.updateMemberAndRebalance(cur, m, "member rejoined with new protocols"), nil
	case stateStable:
		if cur.id == g.leader || !cur.matches(m.protocols) {
			// The leader rejoins to reassign (new partitions, new
			// subscriptions): that is a rebalance.
			return g.updateMemberAndRebalance(cur, m, "leader or changed member rejoined"), nil
		}
		g.scheduleSession(cur)
		return nil, g.joinResponse(cur, nil)
	default: // Empty, Dead
		return nil, joinError(kerr.UnknownMemberID)
	}
}

// addMemberAndRebalance adds a member awaiting its join response.
func (g *ClassicGroup) addMemberAndRebalance(m *classicMember) <-chan *kmsg.JoinGroupResponse {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	m.joinCh = make(chan *kmsg.JoinGroupResponse, 1)
	g.members[m.id] = m
	if m.instanceID != nil {
		g.staticMembers[*m.instanceID] = m.id
	}
	if g.leader == "" {
		g.leader = m.id
	}
	g.newMemberAdded = true
	g.gc.logger.Debug("member joined", "group", g.id, "member", m.id, "instance_id", derefOr(m.instanceID, ""))
	ch := m.joinCh // completing the join phase below answers it and clears the field
	g.maybePrepareRebalance("new member " + m.id + " joined")
	return ch
}

// updateMemberAndRebalance takes a rejoin's protocols and timeouts and
// parks it until the join phase completes.
func (g *ClassicGroup) updateMemberAndRebalance(cur, m *classicMember, reason string) <-chan *kmsg.JoinGroupResponse {
	cur.protocols, cur.rebalanceTimeout, cur.sessionTimeout = m.protocols, m.rebalanceTimeout, m.sessionTimeout
	cur.clientID, cur.clientHost = m.clientID, m.clientHost
	if cur.joinCh != nil { // a duplicate join: the older one loses
		g.completeJoin(cur, joinError(kerr.RebalanceInProgress))
	}
	cur.joinCh = make(chan *kmsg.JoinGroupResponse, 1)
	ch := cur.joinCh
	if g.state == statePreparingRebalance {
		g.maybeCompleteJoinPhase()
	} else {
		g.maybePrepareRebalance(reason)
	}
	return ch
}

// replaceStaticMember is Kafka's updateStaticMemberThenRebalanceOrCompleteJoin:
// a static member came back with a new member id. It takes over the old
// member's place, assignment included; the old id is fenced. In Stable a
// rejoin that keeps the selected protocol is answered at once, with no
// rebalance: that is the point of static membership.
func (g *ClassicGroup) replaceStaticMember(oldID string, m *classicMember) (<-chan *kmsg.JoinGroupResponse, *kmsg.JoinGroupResponse) {
	old := g.members[oldID]
	g.completeJoin(old, joinError(kerr.FencedInstanceID))
	g.completeSync(old, syncError(kerr.FencedInstanceID))
	stopTimer(old.sessionTimer)
	delete(g.members, oldID)
	m.assignment = old.assignment
	g.members[m.id] = m
	g.staticMembers[*m.instanceID] = m.id
	if g.leader == oldID {
		g.leader = m.id
	}
	if g.pendingSync[oldID] {
		delete(g.pendingSync, oldID)
		g.pendingSync[m.id] = true
	}
	g.gc.logger.Info("static member rejoined", "group", g.id, "instance_id", *m.instanceID, "old_member", oldID, "member", m.id)

	switch g.state {
	case stateStable:
		if g.selectProtocol() == g.protocol {
			g.scheduleSession(m)
			g.gc.persist(g.id, g)
			resp := g.joinResponse(m, nil)
			resp.SkipAssignment = m.id == g.leader
			return nil, resp
		}
		ch := make(chan *kmsg.JoinGroupResponse, 1)
		m.joinCh = ch
		g.prepareRebalance("static member " + *m.instanceID + " rejoined with other protocols")
		return ch, nil
	case stateCompletingRebalance:
		// The leader may already have assigned to the old id: rebalance.
		ch := make(chan *kmsg.JoinGroupResponse, 1)
		m.joinCh = ch
		g.prepareRebalance("static member " + *m.instanceID + " rejoined while the group was completing a rebalance")
		return ch, nil
	default: // PreparingRebalance: answered when the join phase completes
		ch := make(chan *kmsg.JoinGroupResponse, 1)
		m.joinCh = ch
		g.maybeCompleteJoinPhase()
		return ch, nil
	}
}

func (g *ClassicGroup) maybePrepareRebalance(reason string) {
	switch g.state {
	case stateStable, stateCompletingRebalance, stateEmpty:
		g.prepareRebalance(reason)
	case statePreparingRebalance:
		g.maybeCompleteJoinPhase()
	}
}

// prepareRebalance moves the group to PreparingRebalance and arms the join
// phase: the initial delay for a group that was Empty (extended while new
// members keep arriving, up to the rebalance timeout), else the rebalance
// timeout, ended early once every member has rejoined.
func (g *ClassicGroup) prepareRebalance(reason string) {
	if g.state == stateCompletingRebalance {
		// Assignments of the generation being abandoned are void.
		for _, m := range g.members {
			m.assignment = nil
			g.completeSync(m, syncError(kerr.RebalanceInProgress))
		}
	}
	stopTimer(g.syncTimer)
	clear(g.pendingSync)
	initial := g.state == stateEmpty
	g.initialRebalance = initial
	g.transitionTo(statePreparingRebalance)
	g.gc.logger.Info("preparing to rebalance", "group", g.id, "generation", g.generation, "reason", reason)
	stopTimer(g.joinTimer)
	if initial {
		delay := g.gc.cfg.GroupInitialRebalanceDelay
		remaining := max(g.rebalanceTimeout()-delay, 0)
		g.newMemberAdded = false
		g.armInitialDelay(delay, remaining)
		return
	}
	g.joinTimer = g.gc.afterFunc(g.rebalanceTimeout(), g.completeJoinPhase)
	g.maybeCompleteJoinPhase()
}

func (g *ClassicGroup) armInitialDelay(delay, remaining time.Duration) {
	g.joinTimer = g.gc.afterFunc(delay, func() {
		if g.state != statePreparingRebalance {
			return
		}
		if g.newMemberAdded && remaining > 0 {
			g.newMemberAdded = false
			next := min(g.gc.cfg.GroupInitialRebalanceDelay, remaining)
			g.armInitialDelay(next, max(remaining-next, 0))
			return
		}
		g.completeJoinPhase()
	})
}

// hasAllMembersJoined: every member awaits its join response and no
// handed-out member id is still expected.
func (g *ClassicGroup) hasAllMembersJoined() bool {
	for _, m := range g.members {
		if m.joinCh == nil {
			return false
		}
	}
	return len(g.pendingMembers) == 0
}

// maybeCompleteJoinPhase ends the join phase early once everyone rejoined,
// except during the initial delay, which always runs its course.
func (g *ClassicGroup) maybeCompleteJoinPhase() {
	if g.state != statePreparingRebalance || g.initialRebalance || !g.hasAllMembersJoined() {
		return
	}
	g.completeJoinPhase()
}

// completeJoinPhase is Kafka's completeClassicGroupJoin: dynamic members
// that did not rejoin are dropped (static ones keep their place until
// their session expires), a new generation starts, and every waiting
// member gets its join response, the leader with the member list.
func (g *ClassicGroup) completeJoinPhase() {
	if g.state != statePreparingRebalance {
		return
	}
	stopTimer(g.joinTimer)
	g.initialRebalance = false
	for _, m := range g.members {
		if m.joinCh == nil && m.instanceID == nil {
			g.removeMember(m, "did not rejoin before the rebalance timeout")
		}
	}
	if !g.electJoinedLeader() && len(g.members) > 0 {
		// Only static members that have not rejoined are left: wait for
		// them, or for their sessions to expire.
		g.joinTimer = g.gc.afterFunc(g.rebalanceTimeout(), g.completeJoinPhase)
		return
	}
	g.gc.rebalanceDone(groupTypeClassic, g.stateTimestamp) // stamped when PreparingRebalance began
	g.generation++
	if len(g.members) == 0 {
		g.protocol = ""
		g.leader = ""
		g.transitionTo(stateEmpty)
		g.gc.persist(g.id, g)
		g.gc.logger.Info("group is empty", "group", g.id, "generation", g.generation)
		return
	}
	g.protocol = g.selectProtocol()
	g.transitionTo(stateCompletingRebalance)
	g.gc.logger.Info("rebalance complete", "group", g.id, "generation", g.generation,
		"protocol", g.protocol, "leader", g.leader, "members", len(g.members))
	var members []kmsg.JoinGroupResponseMember
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		members = append(members, kmsg.JoinGroupResponseMember{
			MemberID: m.id, InstanceID: m.instanceID, ProtocolMetadata: m.metadata(g.protocol),
		})
	}
	for _, m := range g.members {
		g.pendingSync[m.id] = true
		if m.joinCh != nil {
			g.completeJoin(m, g.joinResponse(m, members))
			g.scheduleSession(m) // a static member that did not rejoin keeps its deadline
		}
	}
	gen := g.generation
	g.syncTimer = g.gc.afterFunc(g.rebalanceTimeout(), func() { g.expirePendingSync(gen) })
	g.gc.persist(g.id, g)
}

// electJoinedLeader keeps the leader if it rejoined, else picks a member
// that did; false if no member rejoined.
func (g *ClassicGroup) electJoinedLeader() bool {
	if l := g.members[g.leader]; l != nil && l.joinCh != nil {
		return true
	}
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		if g.members[id].joinCh != nil {
			g.leader = id
			return true
		}
	}
	return false
}

// joinResponse is a member's answer for the current generation; the leader
// gets the member list (built here when members is nil).
func (g *ClassicGroup) joinResponse(m *classicMember, members []kmsg.JoinGroupResponseMember) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Generation = g.generation
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	if m.id == g.leader {
		if members == nil {
			for _, id := range slices.Sorted(maps.Keys(g.members)) {
				o := g.members[id]
				members = append(members, kmsg.JoinGroupResponseMember{
					MemberID: o.id, InstanceID: o.instanceID, ProtocolMetadata: o.metadata(g.protocol),
				})
			}
		}
		resp.Members = members
	}
	return resp
}

func (g *ClassicGroup) completeJoin(m *classicMember, resp *kmsg.JoinGroupResponse) {
	if m.joinCh != nil {
		m.joinCh <- resp
		m.joinCh = nil
	}
}

func (g *ClassicGroup) completeSync(m *classicMember, resp *kmsg.SyncGroupResponse) {
	if m.syncCh != nil {
		m.syncCh <- resp
		m.syncCh = nil
	}
}

// expirePendingSync removes the members of generation gen that never sent
// SyncGroup within the rebalance timeout, and rebalances without them.
func (g *ClassicGroup) expirePendingSync(gen int32) {
	if g.generation != gen || (g.state != stateCompletingRebalance && g.state != stateStable) || len(g.pendingSync) == 0 {
		return
	}
	for id := range g.pendingSync {
		if m := g.members[id]; m != nil {
			g.removeMember(m, "did not sync before the rebalance timeout")
		}
	}
	clear(g.pendingSync)
	g.maybePrepareRebalance("members did not sync")
}

// scheduleSession (re)starts a member's session timeout.
func (g *ClassicGroup) scheduleSession(m *classicMember) {
	stopTimer(m.sessionTimer)
	id := m.id
	m.sessionTimer = g.gc.afterFunc(m.sessionTimeout, func() { g.expireSession(id) })
}

// expireSession removes a member whose session timed out; a member the
// broker owes a response to is not expired.
func (g *ClassicGroup) expireSession(id string) {
	m := g.members[id]
	if m == nil || g.state == stateDead {
		return
	}
	if m.joinCh != nil || m.syncCh != nil {
		g.scheduleSession(m)
		return
	}
	g.gc.logger.Info("member session expired", "group", g.id, "member", id, "instance_id", derefOr(m.instanceID, ""))
	g.removeMember(m, "session timeout")
	g.maybePrepareRebalance("member " + id + " session expired")
}

// removeMember drops a member; the caller decides about rebalancing.
func (g *ClassicGroup) removeMember(m *classicMember, reason string) {
	g.completeJoin(m, joinError(kerr.UnknownMemberID))
	g.completeSync(m, syncError(kerr.UnknownMemberID))
	stopTimer(m.sessionTimer)
	delete(g.members, m.id)
	delete(g.pendingSync, m.id)
	if m.instanceID != nil && g.staticMembers[*m.instanceID] == m.id {
		delete(g.staticMembers, *m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
		if len(g.members) > 0 {
			g.leader = slices.Min(slices.Collect(maps.Keys(g.members)))
		}
	}
	g.gc.logger.Debug("member removed", "group", g.id, "member", m.id, "reason", reason)
}

func derefOr(s *string, def string) string {
	if s == nil {
		return def
	}
	return *s
}

// SyncGroup hands out the leader's assignment (Kafka's classicGroupSync):
// the leader's SyncGroup ends CompletingRebalance; others wait for it.
func (gc *GroupCoordinator) SyncGroup(req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	gc.mu.Lock()
	ch, resp := gc.syncGroup(req)
	gc.mu.Unlock()
	if resp == nil {
		select {
		case resp = <-ch:
		case <-gc.done:
			resp = syncError(kerr.NotCoordinator)
		}
	}
	resp.Version = req.Version
	return resp
}

func syncError(err *kerr.Error) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.ErrorCode = err.Code
	return resp
}

func (gc *GroupCoordinator) syncGroup(req *kmsg.SyncGroupRequest) (<-chan *kmsg.SyncGroupResponse, *kmsg.SyncGroupResponse) {
	if gc.closed {
		return nil, syncError(kerr.NotCoordinator)
	}
	g, _ := gc.groups[req.Group].(*ClassicGroup)
	if g == nil {
		return nil, syncError(kerr.UnknownMemberID)
	}
	if g.state == stateDead {
		return nil, syncError(kerr.CoordinatorNotAvailable)
	}
	if err := g.validateMember(req.MemberID, req.InstanceID); err != nil {
		return nil, syncError(err)
	}
	if req.Generation != g.generation {
		return nil, syncError(kerr.IllegalGeneration)
	}
	if (req.ProtocolType != nil && *req.ProtocolType != g.protocolType) || (req.Protocol != nil && *req.Protocol != g.protocol) {
		return nil, syncError(kerr.InconsistentGroupProtocol)
	}
	m := g.members[req.MemberID]
	switch g.state {
	case stateEmpty:
		return nil, syncError(kerr.UnknownMemberID)
	case statePreparingRebalance:
		return nil, syncError(kerr.RebalanceInProgress)
	case stateStable:
		delete(g.pendingSync, m.id)
		g.scheduleSession(m)
		return nil, g.syncResponse(m)
	}
	// CompletingRebalance
	delete(g.pendingSync, m.id)
	g.scheduleSession(m)
	if m.syncCh != nil {
		g.completeSync(m, syncError(kerr.RebalanceInProgress))
	}
	m.syncCh = make(chan *kmsg.SyncGroupResponse, 1)
	ch := m.syncCh
	if m.id == g.leader {
		assignments := make(map[string][]byte, len(req.GroupAssignment))
		for _, a := range req.GroupAssignment {
			assignments[a.MemberID] = bytes.Clone(a.MemberAssignment)
		}
		for id, o := range g.members {
			o.assignment = assignments[id] // members left out get an empty assignment
		}
		g.transitionTo(stateStable)
		g.gc.persist(g.id, g)
		for _, o := range g.members {
			g.completeSync(o, g.syncResponse(o))
		}
	}
	return ch, nil
}

func (g *ClassicGroup) syncResponse(m *classicMember) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.MemberAssignment = m.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	return resp
}

// Heartbeat keeps a member's session alive and tells it when to rejoin
// (Kafka's classicGroupHeartbeat).
func (gc *GroupCoordinator) Heartbeat(req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if err := gc.heartbeat(req); err != nil {
		resp.ErrorCode = err.Code
	}
	return resp
}

func (gc *GroupCoordinator) heartbeat(req *kmsg.HeartbeatRequest) *kerr.Error {
	if gc.closed {
		return kerr.NotCoordinator
	}
	g, _ := gc.groups[req.Group].(*ClassicGroup)
	if g == nil {
		return kerr.UnknownMemberID
	}
	if g.state == stateDead {
		return kerr.CoordinatorNotAvailable
	}
	if err := g.validateMember(req.MemberID, req.InstanceID); err != nil {
		return err
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration
	}
	m := g.members[req.MemberID]
	switch g.state {
	case stateEmpty:
		return kerr.UnknownMemberID
	case statePreparingRebalance:
		g.scheduleSession(m)
		return kerr.RebalanceInProgress
	}
	g.scheduleSession(m)
	return nil
}

// LeaveGroup removes members (Kafka's classicGroupLeave): v3+ batches
// members, each identified by member id or, for static members, by
// instance id (FENCED_INSTANCE_ID if both are given and disagree).
func (gc *GroupCoordinator) LeaveGroup(req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.closed {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	g, _ := gc.groups[req.Group].(*ClassicGroup)
	if g == nil || g.state == stateDead {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp
	}
	removed := 0
	for _, lm := range leaving {
		sm := kmsg.NewLeaveGroupResponseMember()
		sm.MemberID, sm.InstanceID = lm.MemberID, lm.InstanceID
		err := g.leave(lm.MemberID, lm.InstanceID)
		if err == nil {
			removed++
		} else {
			sm.ErrorCode = err.Code
		}
		resp.Members = append(resp.Members, sm)
	}
	if req.Version < 3 {
		resp.ErrorCode = resp.Members[0].ErrorCode
		resp.Members = nil
	}
	if removed > 0 {
		g.maybePrepareRebalance("members left the group")
	}
	return resp
}

func (g *ClassicGroup) leave(memberID string, instanceID *string) *kerr.Error {
	if instanceID != nil {
		id, ok := g.staticMembers[*instanceID]
		switch {
		case !ok:
			return kerr.UnknownMemberID
		case memberID != "" && memberID != id:
			return kerr.FencedInstanceID
		}
		g.gc.logger.Info("static member left", "group", g.id, "instance_id", *instanceID, "member", id)
		g.removeMember(g.members[id], "left the group")
		return nil
	}
	if t, ok := g.pendingMembers[memberID]; ok {
		t.Stop()
		delete(g.pendingMembers, memberID)
		return nil
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID
	}
	g.removeMember(m, "left the group")
	return nil
}
