package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// authorizeConfigResource checks op (DESCRIBE_CONFIGS or ALTER_CONFIGS) on
// a config resource as KafkaApis/ConfigAdminManager do: a topic's own
// ACLs, a group's, and the cluster's for broker, broker logger and client
// metrics resources. It returns the error to answer, nil if allowed; a
// resource type it does not know is left to the handler.
func (s *Server) authorizeConfigResource(creq *clientReq, op acl.Operation, typ kmsg.ConfigResourceType, name string) *kerr.Error {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		if !s.authorize(creq, op, acl.ResourceTopic, name) {
			return kerr.TopicAuthorizationFailed
		}
	case kmsg.ConfigResourceTypeGroupConfig:
		if !s.authorize(creq, op, acl.ResourceGroup, name) {
			return kerr.GroupAuthorizationFailed
		}
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger, kmsg.ConfigResourceTypeClientMetrics:
		if !s.authorizeCluster(creq, op) {
			return kerr.ClusterAuthorizationFailed
		}
	}
	return nil
}
