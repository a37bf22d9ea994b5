package broker

import (
	"regexp"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// ApiVersions: v0-4
//
// Behavior:
// * Lists protocol's supported table: exactly what kbroker implements.
// * A version the broker does not know gets a v0 response with
//   UNSUPPORTED_VERSION and the table, so the client can retry at a version
//   both sides speak (Kafka's ApiVersionsRequest.isUnsupported path).
// * v3+: ClientSoftwareName/Version must match Kafka's pattern, else
//   INVALID_REQUEST.
// * No finalized features are reported: kbroker does not yet serve the
//   features they gate (transaction.version 2, group.version 1).
//
// Version notes:
// * v1: ThrottleMillis
// * v3: flexible; client software name and version (KIP-511)

func (s *Server) handleApiVersions(creq *clientReq) (kmsg.Response, error) {
	if creq.Body == nil { // unsupported version: answer in v0
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 0
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		resp.ApiKeys = protocol.ApiVersionsKeys()
		return resp, nil
	}
	req := creq.Body.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if req.Version >= 3 && (!softwarePattern.MatchString(req.ClientSoftwareName) || !softwarePattern.MatchString(req.ClientSoftwareVersion)) {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	resp.ApiKeys = protocol.ApiVersionsKeys()
	return resp, nil
}

// softwarePattern is Kafka's ApiVersionsRequest.SOFTWARE_NAME_VERSION_PATTERN.
var softwarePattern = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$`)
