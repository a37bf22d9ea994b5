package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
)

// ACLs in the metadata log (Kafka's AclControlManager and AclsImage). Two
// record types carry them:
//
//	AccessControlEntry        aclId, acl (Kafka's AccessControlEntryRecord)
//	RemoveAccessControlEntry  aclId      (RemoveAccessControlEntryRecord)
//
// and a snapshot lists them under "acls". Every node's authorizer follows
// Image.ACLs.

const (
	recAccessControlEntry       = "AccessControlEntry"
	recRemoveAccessControlEntry = "RemoveAccessControlEntry"
)

// ACLsImage is the cluster's ACLs by id. Like the Image it is immutable: a
// change makes a new one, so a node sees that the ACLs changed by
// comparing pointers.
type ACLsImage struct {
	ByID map[[16]byte]acl.Binding
}

var emptyACLs = &ACLsImage{ByID: map[[16]byte]acl.Binding{}}

// Bindings lists the ACLs in no particular order.
func (a *ACLsImage) Bindings() []acl.Binding { return slices.Collect(maps.Values(a.ByID)) }

// ACLEntry is one ACL in a snapshot.
type ACLEntry struct {
	ID  [16]byte    `json:"id"`
	ACL acl.Binding `json:"acl"`
}

func (r *record) checkACL() error {
	if r.ACLID == ([16]byte{}) {
		return errors.New("no acl id")
	}
	if r.Type == recAccessControlEntry {
		if r.ACL == nil {
			return errors.New("no acl")
		}
		return r.ACL.Validate()
	}
	return nil
}

func (n *Image) applyACLRecord(r record, copied *bool) error {
	if n.ACLs == nil { // an image built by hand, in tests
		n.ACLs = emptyACLs
	}
	if !*copied {
		// Once per entry: an entry of many ACL records would otherwise
		// copy the whole set once per record.
		n.ACLs = &ACLsImage{ByID: maps.Clone(n.ACLs.ByID)}
		if n.ACLs.ByID == nil {
			n.ACLs.ByID = map[[16]byte]acl.Binding{}
		}
		*copied = true
	}
	byID := n.ACLs.ByID
	_, exists := byID[r.ACLID]
	switch r.Type {
	case recAccessControlEntry:
		if exists {
			return fmt.Errorf("acl %x exists", r.ACLID)
		}
		byID[r.ACLID] = *r.ACL
	default:
		if !exists {
			return fmt.Errorf("unknown acl %x", r.ACLID)
		}
		delete(byID, r.ACLID)
	}
	return nil
}

func snapshotACLs(img *Image) []ACLEntry {
	if img.ACLs == nil { // an image built by hand, in tests
		return nil
	}
	var out []ACLEntry
	for id, b := range img.ACLs.ByID {
		out = append(out, ACLEntry{ID: id, ACL: b})
	}
	slices.SortFunc(out, func(a, b ACLEntry) int { return slices.Compare(a.ID[:], b.ID[:]) })
	return out
}

func restoreACLs(img *Image, entries []ACLEntry) error {
	if len(entries) == 0 {
		return nil
	}
	byID := map[[16]byte]acl.Binding{}
	for _, e := range entries {
		if _, dup := byID[e.ID]; dup || e.ID == ([16]byte{}) {
			return fmt.Errorf("acl id %x zero or twice", e.ID)
		}
		if err := e.ACL.Validate(); err != nil {
			return err
		}
		byID[e.ID] = e.ACL
	}
	img.ACLs = &ACLsImage{ByID: byID}
	return nil
}

// CreateACLs adds ACLs (Kafka's AclControlManager.createAcls): errs[i] is
// bindings[i]'s outcome, INVALID_REQUEST for one Validate refuses. An ACL
// that exists already is not added twice, and is no error.
func (c *Controller) CreateACLs(ctx context.Context, bindings []acl.Binding) ([]error, error) {
	req := kmsg.NewPtrCreateACLsRequest()
	req.Version = 3
	for _, b := range bindings {
		req.Creations = append(req.Creations, protocol.BindingCreation(b))
	}
	kresp, err := c.route(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.CreateACLsResponse)
	if len(resp.Results) != len(bindings) {
		return nil, kerrf(kerr.UnknownServerError, "%d results for %d creations", len(resp.Results), len(bindings))
	}
	errs := make([]error, len(bindings))
	for i, r := range resp.Results {
		errs[i] = kafkaErr(r.ErrorCode, r.ErrorMessage)
	}
	_, err = c.waitApplied(ctx, offsetFromTags(&resp.UnknownTags))
	return errs, err
}

// DeleteACLs removes the ACLs each filter matches, and returns them per
// filter (an ACL two filters match is reported by both).
func (c *Controller) DeleteACLs(ctx context.Context, filters []acl.Filter) ([][]acl.Binding, error) {
	req := kmsg.NewPtrDeleteACLsRequest()
	req.Version = 3
	for _, f := range filters {
		req.Filters = append(req.Filters, protocol.FilterDeletion(f))
	}
	kresp, err := c.route(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.DeleteACLsResponse)
	if len(resp.Results) != len(filters) {
		return nil, kerrf(kerr.UnknownServerError, "%d results for %d filters", len(resp.Results), len(filters))
	}
	out := make([][]acl.Binding, len(filters))
	for i, r := range resp.Results {
		if err := kafkaErr(r.ErrorCode, r.ErrorMessage); err != nil {
			return nil, err
		}
		for _, m := range r.MatchingACLs {
			out[i] = append(out[i], protocol.MatchingBinding(m))
		}
	}
	_, err = c.waitApplied(ctx, offsetFromTags(&resp.UnknownTags))
	return out, err
}

// CreateAcls: v2-3, on the controller listener. The valid creations are
// one entry.
func (c *Controller) handleCreateACLs(req *kmsg.CreateACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	for i := range resp.Results {
		resp.Results[i] = kmsg.NewCreateACLsResponseResult()
	}
	off, err := c.write(func(img *Image) ([]record, error) {
		var recs []record
		have := make(map[acl.Binding]bool, len(img.ACLs.ByID))
		for _, b := range img.ACLs.ByID {
			have[b] = true
		}
		for i, cr := range req.Creations {
			b := protocol.CreationBinding(cr)
			if err := b.Validate(); err != nil {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr(err.Error())
				continue
			}
			if have[b] {
				continue
			}
			if len(recs) == MaxRecordsPerUserOp {
				return nil, kerrf(kerr.PolicyViolation, ExcessiveBatchMessage)
			}
			have[b] = true
			recs = append(recs, record{Type: recAccessControlEntry, ACLID: newTopicID(), ACL: &b})
		}
		return recs, nil
	})
	if err != nil {
		code, msg := codeMsg(err)
		for i := range resp.Results {
			if resp.Results[i].ErrorCode == 0 {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, msg
			}
		}
		return resp
	}
	setOffsetTag(&resp.UnknownTags, off)
	return resp
}

// DeleteAcls: v2-3, on the controller listener: one entry removes what
// every filter matches. An invalid filter fails alone.
func (c *Controller) handleDeleteACLs(req *kmsg.DeleteACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	for i := range resp.Results {
		resp.Results[i] = kmsg.NewDeleteACLsResponseResult()
	}
	off, err := c.write(func(img *Image) ([]record, error) {
		var recs []record
		removed := map[[16]byte]bool{}
		for i, rf := range req.Filters {
			resp.Results[i].MatchingACLs = nil
			f := protocol.DeletionFilter(rf)
			if err := f.Validate(); err != nil {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr(err.Error())
				continue
			}
			for id, b := range img.ACLs.ByID {
				if !f.Matches(b) {
					continue
				}
				resp.Results[i].MatchingACLs = append(resp.Results[i].MatchingACLs, protocol.MatchingACL(b))
				if !removed[id] {
					if len(recs) == MaxRecordsPerUserOp {
						return nil, kerrf(kerr.PolicyViolation, ExcessiveBatchMessage)
					}
					removed[id] = true
					recs = append(recs, record{Type: recRemoveAccessControlEntry, ACLID: id})
				}
			}
		}
		return recs, nil
	})
	if err != nil {
		resp.Results = nil // NOT_CONTROLLER and the like: the sender retries
		code, msg := codeMsg(err)
		for range req.Filters {
			resp.Results = append(resp.Results, kmsg.DeleteACLsResponseResult{ErrorCode: code, ErrorMessage: msg})
		}
		return resp
	}
	setOffsetTag(&resp.UnknownTags, off)
	return resp
}
