package coordinator

import (
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupAuthorizedOperations is what an unsecured broker allows on a group
// (READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS as AclOperation
// bits), for requests that ask.
const groupAuthorizedOperations int32 = 1<<3 | 1<<6 | 1<<8 | 1<<10 | 1<<11

// DescribeGroups describes classic groups (Kafka's
// GroupMetadataManager.describeGroups). Members' metadata and assignments
// are shown only while the group is Stable; an unknown group, or one that
// is not classic, is Dead, with GROUP_ID_NOT_FOUND from v6.
func (gc *GroupCoordinator) DescribeGroups(req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, id := range req.Groups {
		sg := kmsg.NewDescribeGroupsResponseGroup()
		sg.Group = id
		sg.AuthorizedOperations = -2147483648
		if req.IncludeAuthorizedOperations {
			sg.AuthorizedOperations = groupAuthorizedOperations
		}
		g, _ := gc.groups[id].(*ClassicGroup)
		switch {
		case gc.closed:
			sg.ErrorCode = kerr.NotCoordinator.Code
		case id == "":
			sg.ErrorCode = kerr.InvalidGroupID.Code
		case g == nil:
			sg.State = stateDead.String()
			if req.Version >= 6 {
				sg.ErrorCode = kerr.GroupIDNotFound.Code
				msg := "Group " + id + " not found."
				if gc.groups[id] != nil {
					msg = "Group " + id + " is not a classic group."
				}
				sg.ErrorMessage = kmsg.StringPtr(msg)
			}
		default:
			sg.State = g.state.String()
			sg.ProtocolType = g.protocolType
			stable := g.state == stateStable
			if stable {
				sg.Protocol = g.protocol
			}
			for _, mid := range slices.Sorted(maps.Keys(g.members)) {
				m := g.members[mid]
				sm := kmsg.NewDescribeGroupsResponseGroupMember()
				sm.MemberID, sm.InstanceID, sm.ClientID, sm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
				sm.ProtocolMetadata, sm.MemberAssignment = []byte{}, []byte{}
				if stable {
					sm.ProtocolMetadata = m.metadata(g.protocol)
					if m.assignment != nil {
						sm.MemberAssignment = m.assignment
					}
				}
				sg.Members = append(sg.Members, sm)
			}
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}

// ListGroups lists every group, optionally filtered by state (v4,
// case-insensitive) and type (v5).
func (gc *GroupCoordinator) ListGroups(req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.closed {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	matches := func(filter []string, v string) bool {
		return len(filter) == 0 || slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, v) })
	}
	for _, id := range slices.Sorted(maps.Keys(gc.groups)) {
		g := gc.groups[id]
		if g.State() == stateDead.String() || !matches(req.StatesFilter, g.State()) || !matches(req.TypesFilter, g.Type()) {
			continue
		}
		sg := kmsg.NewListGroupsResponseGroup()
		sg.Group, sg.ProtocolType, sg.GroupState, sg.GroupType = id, g.ProtocolType(), g.State(), g.Type()
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}

// DeleteGroups deletes empty groups with their offsets: GROUP_ID_NOT_FOUND
// for an unknown group, NON_EMPTY_GROUP while it has members.
func (gc *GroupCoordinator) DeleteGroups(req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	var pending []<-chan error
	gc.mu.Lock()
	for _, id := range req.Groups {
		sg := kmsg.NewDeleteGroupsResponseGroup()
		sg.Group = id
		g := gc.groups[id]
		switch {
		case gc.closed:
			sg.ErrorCode = kerr.NotCoordinator.Code
		case id == "":
			sg.ErrorCode = kerr.InvalidGroupID.Code
		case g == nil || g.State() == stateDead.String():
			sg.ErrorCode = kerr.GroupIDNotFound.Code
		case !g.IsEmpty():
			sg.ErrorCode = kerr.NonEmptyGroup.Code
		default:
			gc.removeGroup(id)
			pending = append(pending, gc.store.Enqueue(deleteGroup(id)))
			gc.logger.Info("group deleted", "group", id)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	gc.mu.Unlock()
	for _, res := range pending {
		if err := gc.await(res); err != nil {
			for i := range resp.Groups {
				if resp.Groups[i].ErrorCode == 0 {
					resp.Groups[i].ErrorCode = err.Code
				}
			}
		}
	}
	return resp
}
