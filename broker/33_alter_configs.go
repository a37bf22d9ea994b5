package broker

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// AlterConfigs: v0-2
//
// Behavior (Kafka's ConfigAdminManager.preprocess, then
// ConfigurationControlManager.legacyAlterConfigResource):
// * A resource named twice in one request: INVALID_REQUEST "Each resource
//   must appear at most once." for every copy; a config named twice or a
//   null value: INVALID_REQUEST.
// * TOPIC: the request's configs replace the topic's whole override set
//   (keys not named are deleted), validated through the topic config
//   catalogue (INVALID_CONFIG); unknown topic → UNKNOWN_TOPIC_OR_PARTITION.
// * BROKER: the name must be "" or this node's id; kbroker has no dynamic
//   broker configs, so any key is refused as Kafka refuses a static one
//   (INVALID_REQUEST "Cannot update these configs dynamically"). An empty
//   set is accepted: there is nothing to clear.
// * BROKER_LOGGER and unknown types: INVALID_REQUEST, as in Kafka (log
//   levels are only alterable incrementally).
// * ValidateOnly does every check and changes nothing.
//
// Version notes:
// * v1: same as v0 (throttle time semantics)
// * v2: flexible
//
// With an authorizer: ALTER_CONFIGS on the topic
// (TOPIC_AUTHORIZATION_FAILED), group (GROUP_AUTHORIZATION_FAILED) or, for
// broker resources, the cluster (CLUSTER_AUTHORIZATION_FAILED).

func (s *Server) handleAlterConfigs(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)

	counts := countResources(req.Resources, func(r *kmsg.AlterConfigsRequestResource) configResource {
		return configResource{r.ResourceType, r.ResourceName}
	})
	for i := range req.Resources {
		rr := &req.Resources[i]
		res := kmsg.NewAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		err := newAPIError(kerr.InvalidRequest, "Each resource must appear at most once.")
		if counts[configResource{rr.ResourceType, rr.ResourceName}] == 1 {
			if aerr := s.authorizeConfigResource(creq, acl.OpAlterConfigs, rr.ResourceType, rr.ResourceName); aerr != nil {
				err = aerr
			} else {
				err = s.alterConfigsResource(rr, req.ValidateOnly)
			}
		}
		res.ErrorCode, res.ErrorMessage = errorResult(err)
		resp.Resources = append(resp.Resources, res)
	}
	return resp, nil
}

func (s *Server) alterConfigsResource(rr *kmsg.AlterConfigsRequestResource, validateOnly bool) error {
	configs := make(map[string]string, len(rr.Configs))
	var nulls []string
	for _, c := range rr.Configs {
		if _, dup := configs[c.Name]; dup || slices.Contains(nulls, c.Name) {
			return newAPIError(kerr.InvalidRequest, "Error due to duplicate config keys")
		}
		if c.Value == nil {
			nulls = append(nulls, c.Name)
			continue
		}
		configs[c.Name] = *c.Value
	}
	if len(nulls) > 0 {
		return newAPIError(kerr.InvalidRequest, "Null value not supported for : %s", strings.Join(nulls, ", "))
	}

	switch rr.ResourceType {
	case kmsg.ConfigResourceTypeBroker:
		if rr.ResourceName != "" {
			if err := s.checkBrokerResourceName(rr.ResourceName); err != nil {
				return err
			}
		}
		names := make([]string, 0, len(configs))
		for name := range configs {
			names = append(names, name)
		}
		slices.Sort(names)
		return refuseBrokerConfigChange(names)

	case kmsg.ConfigResourceTypeTopic:
		return s.replaceTopicConfigs(rr.ResourceName, configs, validateOnly)

	default:
		return newAPIError(kerr.InvalidRequest, "Unknown resource type %d", rr.ResourceType)
	}
}

// replaceTopicConfigs validates a topic's new override set and, unless
// validateOnly, stores it in place of the old one. Validation comes before
// the existence check, as in ConfigurationControlManager.validateAlterConfig.
func (s *Server) replaceTopicConfigs(topic string, configs map[string]string, validateOnly bool) error {
	if err := checkTopicResourceName(topic); err != nil {
		return err
	}
	normalized, err := validateTopicConfigs(configs)
	if err != nil {
		return err
	}
	if _, ok := s.logs.Topic(topic); !ok {
		return newAPIError(kerr.UnknownTopicOrPartition, "The topic '%s' does not exist.", topic)
	}
	if validateOnly {
		return nil
	}
	if s.cluster != nil {
		return s.cluster.setTopicConfigs(topic, normalized)
	}
	t, err := s.logs.SetTopicConfig(topic, normalized)
	if err != nil {
		return err
	}
	s.logger.Info("altered topic configs", "topic", topic, "configs", t.Configs)
	return nil
}
