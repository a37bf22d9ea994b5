package broker

import (
	"regexp"
	"slices"

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
// * ConsumerGroupHeartbeat and ConsumerGroupDescribe are left out when
//   "consumer" is not in group.coordinator.rebalance.protocols, as Kafka
//   does, so clients fall back to the classic protocol.
// * Features (v3+): the two kbroker gates. group.version is supported 0-1
//   and finalized at 1 when the KIP-848 protocol is on (as a Kafka 4
//   cluster reports it), at 0 otherwise; transaction.version is supported
//   0-2 and finalized at 2 (transactions v2, KIP-890), so clients send
//   Produce v12 and EndTxn v5.
//
// Version notes:
// * v1: ThrottleMillis
// * v3: flexible; client software name and version (KIP-511)

func (s *Server) handleApiVersions(creq *clientReq) (kmsg.Response, error) {
	if creq.Body == nil { // unsupported version: answer in v0
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 0
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		resp.ApiKeys = s.apiVersionsKeys()
		return resp, nil
	}
	req := creq.Body.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if req.Version >= 3 && (!softwarePattern.MatchString(req.ClientSoftwareName) || !softwarePattern.MatchString(req.ClientSoftwareVersion)) {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	resp.ApiKeys = s.apiVersionsKeys()
	resp.SupportedFeatures = []kmsg.ApiVersionsResponseSupportedFeature{
		{Name: "group.version", MinVersion: 0, MaxVersion: 1},
		{Name: "transaction.version", MinVersion: 0, MaxVersion: 2},
	}
	resp.FinalizedFeaturesEpoch = 1
	tv := s.cfg.Txn.TransactionVersion
	resp.FinalizedFeatures = []kmsg.ApiVersionsResponseFinalizedFeature{{Name: "transaction.version", MinVersionLevel: tv, MaxVersionLevel: tv}}
	if s.cfg.Group.ConsumerProtocolEnabled {
		resp.FinalizedFeatures = append(resp.FinalizedFeatures, kmsg.ApiVersionsResponseFinalizedFeature{Name: "group.version", MinVersionLevel: 1, MaxVersionLevel: 1})
	}
	return resp, nil
}

// softwarePattern is Kafka's ApiVersionsRequest.SOFTWARE_NAME_VERSION_PATTERN.
var softwarePattern = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$`)

// apiVersionsKeys is protocol's table less the APIs this broker's
// configuration turns off.
func (s *Server) apiVersionsKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := protocol.ApiVersionsKeys()
	if !s.cfg.Group.ConsumerProtocolEnabled {
		keys = slices.DeleteFunc(keys, func(k kmsg.ApiVersionsResponseApiKey) bool {
			return k.ApiKey == protocol.ConsumerGroupHeartbeatKey || k.ApiKey == protocol.ConsumerGroupDescribeKey
		})
	}
	return keys
}
