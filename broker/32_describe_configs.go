package broker

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// DescribeConfigs: v1-4
//
// Behavior (Kafka's ConfigHelper.describeConfigs):
// * TOPIC: every Kafka topic config with the value in effect. Source is
//   DYNAMIC_TOPIC_CONFIG for an override, else that of the first broker
//   synonym Kafka reports (STATIC_BROKER_CONFIG when set in
//   server.properties, DEFAULT_CONFIG otherwise). Synonyms are ordered as
//   Kafka orders them, including its quirk of dropping the entries before
//   the primary broker key (see configSynonyms). Unknown topic →
//   UNKNOWN_TOPIC_OR_PARTITION; an illegal name → INVALID_TOPIC_EXCEPTION.
// * BROKER: the name must be this node's id, which lists every broker
//   config kbroker knows (read-only: there are no dynamic broker configs
//   yet), or "" for the cluster-wide dynamic defaults, of which there are
//   none. Other names → INVALID_REQUEST.
// * BROKER_LOGGER: kbroker logs through one slog logger, reported as the
//   read-only "root" logger with its level.
// * Other resource types (GROUP, CLIENT_METRICS) → INVALID_REQUEST: kbroker
//   has no such configs yet.
// * ConfigNames filters; null or empty means all. Errors are per resource.
//
// Version notes:
// * v1: IncludeSynonyms, Source
// * v3: IncludeDocumentation, ConfigType (KIP-569)
// * v4: flexible
//
// With an authorizer: DESCRIBE_CONFIGS on the topic
// (TOPIC_AUTHORIZATION_FAILED), group (GROUP_AUTHORIZATION_FAILED) or, for
// broker resources, the cluster (CLUSTER_AUTHORIZATION_FAILED).

func (s *Server) handleDescribeConfigs(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)

	for i := range req.Resources {
		rr := &req.Resources[i]
		res := kmsg.NewDescribeConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		var configs []kmsg.DescribeConfigsResponseResourceConfig
		var err error
		if aerr := s.authorizeConfigResource(creq, acl.OpDescribeConfigs, rr.ResourceType, rr.ResourceName); aerr != nil {
			err = aerr
		} else {
			configs, err = s.describeResource(rr, req.IncludeSynonyms, req.IncludeDocumentation)
		}
		if err != nil {
			res.ErrorCode, res.ErrorMessage = errorResult(err)
			configs = nil
		}
		// Kafka filters after building; unknown names are simply absent.
		if len(rr.ConfigNames) > 0 {
			configs = slices.DeleteFunc(configs, func(c kmsg.DescribeConfigsResponseResourceConfig) bool {
				return !slices.Contains(rr.ConfigNames, c.Name)
			})
		}
		res.Configs = configs
		resp.Resources = append(resp.Resources, res)
	}
	return resp, nil
}

func (s *Server) describeResource(rr *kmsg.DescribeConfigsRequestResource, synonyms, docs bool) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	var out []kmsg.DescribeConfigsResponseResourceConfig
	switch rr.ResourceType {
	case kmsg.ConfigResourceTypeTopic:
		if err := validateTopicName(rr.ResourceName); err != nil {
			return nil, err
		}
		t, ok := s.logs.Topic(rr.ResourceName)
		if !ok {
			return nil, kerr.UnknownTopicOrPartition
		}
		for i := range topicConfigDefs {
			out = append(out, s.describeTopicConfig(&topicConfigDefs[i], t.Configs, t.Config, synonyms, docs))
		}

	case kmsg.ConfigResourceTypeBroker:
		if rr.ResourceName == "" {
			return out, nil // no dynamic cluster-wide defaults to list
		}
		if err := s.checkDescribeBrokerName(rr.ResourceName, true); err != nil {
			return nil, err
		}
		for i := range brokerConfigDefs {
			out = append(out, s.describeBrokerConfig(&brokerConfigDefs[i], synonyms, docs))
		}
		slices.SortFunc(out, func(a, b kmsg.DescribeConfigsResponseResourceConfig) int {
			return strings.Compare(a.Name, b.Name)
		})

	case kmsg.ConfigResourceTypeBrokerLogger:
		if rr.ResourceName == "" {
			return nil, newAPIError(kerr.InvalidRequest, "Broker id must not be empty")
		}
		if err := s.checkDescribeBrokerName(rr.ResourceName, false); err != nil {
			return nil, err
		}
		rc := kmsg.NewDescribeConfigsResponseResourceConfig()
		rc.Name, rc.Value = rootLogger, kmsg.StringPtr(s.logLevel())
		rc.Source, rc.ReadOnly = kmsg.ConfigSourceDynamicBrokerLoggerConfig, true
		out = append(out, rc)

	default:
		return nil, newAPIError(kerr.InvalidRequest, "Unsupported resource type: %v", rr.ResourceType)
	}
	return out, nil
}

// checkDescribeBrokerName is ConfigHelper's broker id check, whose messages
// differ slightly from the alter path's.
func (s *Server) checkDescribeBrokerName(name string, orEmpty bool) error {
	id, err := strconv.ParseInt(name, 10, 32)
	if err != nil {
		return newAPIError(kerr.InvalidRequest, "Broker id must be an integer, but it is: %s", name)
	}
	if int32(id) != s.cfg.NodeID {
		if orEmpty {
			return newAPIError(kerr.InvalidRequest, "Unexpected broker id, expected %d or empty string, but received %s", s.cfg.NodeID, name)
		}
		return newAPIError(kerr.InvalidRequest, "Unexpected broker id, expected %d but received %s", s.cfg.NodeID, name)
	}
	return nil
}

// rootLogger is log4j's name for the root logger, which Kafka reports.
const rootLogger = "root"

// logLevel names the broker logger's level in log4j's words.
func (s *Server) logLevel() string {
	ctx := context.Background()
	for _, l := range []struct {
		level slog.Level
		name  string
	}{{slog.LevelDebug, "DEBUG"}, {slog.LevelInfo, "INFO"}, {slog.LevelWarn, "WARN"}, {slog.LevelError, "ERROR"}} {
		if s.logger.Enabled(ctx, l.level) {
			return l.name
		}
	}
	return "OFF"
}
