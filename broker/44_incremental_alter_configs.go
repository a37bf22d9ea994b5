package broker

import (
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// IncrementalAlterConfigs: v0-1
//
// Behavior (Kafka's ConfigAdminManager.preprocess, then
// ConfigurationControlManager.incrementalAlterConfigResource):
// * Duplicate resources, duplicate config names and null values (other than
//   for DELETE) are INVALID_REQUEST, as for AlterConfigs.
// * TOPIC: SET and DELETE change one override; APPEND and SUBTRACT apply to
//   list-typed configs only (else INVALID_CONFIG "Can't APPEND to key ...
//   because its type is not LIST."), starting from the override or, when
//   there is none, Kafka's default. The resulting override set is validated
//   through the topic config catalogue; unknown topic →
//   UNKNOWN_TOPIC_OR_PARTITION. DELETE of a key that is not set is a no-op.
// * BROKER: "" or this node's id. DELETE is a no-op (nothing is set
//   dynamically); anything else is refused: there are no dynamic broker
//   configs yet.
// * BROKER_LOGGER: checked as RuntimeLoggerManager checks it; a valid change
//   is then refused, because kbroker cannot change its log level at runtime.
// * ValidateOnly does every check and changes nothing.
//
// Version notes:
// * v1: flexible
//
// With an authorizer: ALTER_CONFIGS on the topic
// (TOPIC_AUTHORIZATION_FAILED), group (GROUP_AUTHORIZATION_FAILED) or, for
// broker resources, the cluster (CLUSTER_AUTHORIZATION_FAILED).

func (s *Server) handleIncrementalAlterConfigs(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)

	counts := countResources(req.Resources, func(r *kmsg.IncrementalAlterConfigsRequestResource) configResource {
		return configResource{r.ResourceType, r.ResourceName}
	})
	for i := range req.Resources {
		rr := &req.Resources[i]
		res := kmsg.NewIncrementalAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		err := newAPIError(kerr.InvalidRequest, "Each resource must appear at most once.")
		if counts[configResource{rr.ResourceType, rr.ResourceName}] == 1 {
			if aerr := s.authorizeConfigResource(creq, acl.OpAlterConfigs, rr.ResourceType, rr.ResourceName); aerr != nil {
				err = aerr
			} else {
				err = s.incrementalAlterResource(rr, req.ValidateOnly)
			}
		}
		res.ErrorCode, res.ErrorMessage = errorResult(err)
		resp.Resources = append(resp.Resources, res)
	}
	return resp, nil
}

func (s *Server) incrementalAlterResource(rr *kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) error {
	seen := make(map[string]bool, len(rr.Configs))
	var nulls []string
	for _, c := range rr.Configs {
		if seen[c.Name] {
			return newAPIError(kerr.InvalidRequest, "Error due to duplicate config keys")
		}
		seen[c.Name] = true
		if c.Op != kmsg.IncrementalAlterConfigOpDelete && c.Value == nil {
			nulls = append(nulls, c.Name)
		}
	}
	if len(nulls) > 0 {
		return newAPIError(kerr.InvalidRequest, "Null value not supported for : %s", strings.Join(nulls, ", "))
	}

	switch rr.ResourceType {
	case kmsg.ConfigResourceTypeTopic:
		return s.incrementalAlterTopic(rr, validateOnly)
	case kmsg.ConfigResourceTypeBroker:
		return s.incrementalAlterBroker(rr)
	case kmsg.ConfigResourceTypeBrokerLogger:
		return s.incrementalAlterLogger(rr)
	default:
		return newAPIError(kerr.InvalidRequest, "Unknown resource type %d", rr.ResourceType)
	}
}

func (s *Server) incrementalAlterTopic(rr *kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) error {
	if err := checkTopicResourceName(rr.ResourceName); err != nil {
		return err
	}
	configs := map[string]string{}
	if t, ok := s.logs.Topic(rr.ResourceName); ok {
		configs = maps.Clone(t.Configs)
		if configs == nil {
			configs = map[string]string{}
		}
	}
	for _, c := range rr.Configs {
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			configs[c.Name] = *c.Value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(configs, c.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			d := topicConfigByName(c.Name)
			if d == nil || d.typ != kmsg.ConfigTypeList {
				return newAPIError(kerr.InvalidConfig, "Can't %s to key %s because its type is not LIST.", c.Op, c.Name)
			}
			current, ok := configs[c.Name]
			if !ok {
				current = d.def
			}
			configs[c.Name] = applyListOp(c.Op, current, *c.Value)
		default:
			return newAPIError(kerr.InvalidRequest, "Unknown operations type %d", c.Op)
		}
	}
	return s.replaceTopicConfigs(rr.ResourceName, configs, validateOnly)
}

// applyListOp is ConfigurationControlManager's APPEND (add the values not
// already present) and SUBTRACT (remove them) on a comma-separated list.
func applyListOp(op kmsg.IncrementalAlterConfigOp, current, value string) string {
	var items []string
	for _, it := range strings.Split(current, ",") {
		if it != "" {
			items = append(items, it)
		}
	}
	for _, v := range strings.Split(value, ",") {
		if op == kmsg.IncrementalAlterConfigOpAppend {
			if !slices.Contains(items, v) {
				items = append(items, v)
			}
		} else if i := slices.Index(items, v); i >= 0 {
			items = slices.Delete(items, i, i+1)
		}
	}
	return strings.Join(items, ",")
}

// incrementalAlterBroker is ConfigAdminManager.validateBrokerConfigChange for
// a broker with no dynamic configs: the ops are checked as
// prepareIncrementalConfigs checks them, then every key still set is refused.
func (s *Server) incrementalAlterBroker(rr *kmsg.IncrementalAlterConfigsRequestResource) error {
	if rr.ResourceName != "" {
		if err := s.checkBrokerResourceName(rr.ResourceName); err != nil {
			return err
		}
	}
	var set []string
	for _, c := range rr.Configs {
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet:
		case kmsg.IncrementalAlterConfigOpDelete:
			continue
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			typ, known := brokerConfigTypes[c.Name]
			if !known {
				return newAPIError(kerr.InvalidConfig, "Unknown config name: %s", c.Name)
			}
			if typ != kmsg.ConfigTypeList {
				verb := "append"
				if c.Op == kmsg.IncrementalAlterConfigOpSubtract {
					verb = "subtract"
				}
				return newAPIError(kerr.InvalidConfig, "Config value %s is not allowed for config key: %s", verb, c.Name)
			}
		default:
			return newAPIError(kerr.InvalidRequest, "Unknown operations type %d", c.Op)
		}
		set = append(set, c.Name)
	}
	slices.Sort(set)
	return refuseBrokerConfigChange(set)
}

// validLogLevels is LogLevelConfig.VALID_LOG_LEVELS, sorted as Kafka lists
// them in its message.
var validLogLevels = []string{"ALL", "DEBUG", "ERROR", "FATAL", "INFO", "OFF", "TRACE", "WARN"}

// incrementalAlterLogger checks a BROKER_LOGGER change as
// RuntimeLoggerManager.validateLogLevelConfigs does; a valid change is then
// refused (INVALID_REQUEST): the broker's slog level is fixed at start-up.
func (s *Server) incrementalAlterLogger(rr *kmsg.IncrementalAlterConfigsRequestResource) error {
	if err := s.checkBrokerResourceName(rr.ResourceName); err != nil {
		return err
	}
	for _, c := range rr.Configs {
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet, kmsg.IncrementalAlterConfigOpDelete:
			if c.Name != rootLogger {
				return newAPIError(kerr.InvalidConfig, "Logger %s does not exist!", c.Name)
			}
			if c.Op == kmsg.IncrementalAlterConfigOpDelete {
				return newAPIError(kerr.InvalidRequest, "Removing the log level of the %s logger is not allowed", rootLogger)
			}
			if !slices.Contains(validLogLevels, *c.Value) {
				return newAPIError(kerr.InvalidConfig, "Cannot set the log level of %s to %s as it is not a supported log level. Valid log levels are %s",
					c.Name, *c.Value, strings.Join(validLogLevels, ", "))
			}
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			return newAPIError(kerr.InvalidRequest, "%s operation is not allowed for the BROKER_LOGGER resource", c.Op)
		default:
			return newAPIError(kerr.InvalidRequest, "Unknown operation type %d is not allowed for the BROKER_LOGGER resource", c.Op)
		}
	}
	if len(rr.Configs) == 0 {
		return nil
	}
	return newAPIError(kerr.InvalidRequest, "kbroker cannot change log levels at runtime; set the level at start-up")
}
