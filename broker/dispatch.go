package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// handle routes a request to its handler: one line per API key, greppable.
// A nil response means none is sent (acks=0); an error closes the
// connection. protocol.ParseRequest has already refused keys and versions
// outside protocol's supported table.
func (s *Server) handle(creq *clientReq) (kmsg.Response, error) {
	creq.coord = s.coord.Load()
	if resp, ok := s.notCoordinator(creq); ok {
		return resp, nil
	}
	switch creq.Key {
	case protocol.ProduceKey:
		return s.handleProduce(creq)
	case protocol.FetchKey:
		return s.handleFetch(creq)
	case protocol.ListOffsetsKey:
		return s.handleListOffsets(creq)
	case protocol.MetadataKey:
		return s.handleMetadata(creq)
	case protocol.OffsetCommitKey:
		return s.handleOffsetCommit(creq)
	case protocol.OffsetFetchKey:
		return s.handleOffsetFetch(creq)
	case protocol.FindCoordinatorKey:
		return s.handleFindCoordinator(creq)
	case protocol.JoinGroupKey:
		return s.handleJoinGroup(creq)
	case protocol.HeartbeatKey:
		return s.handleHeartbeat(creq)
	case protocol.LeaveGroupKey:
		return s.handleLeaveGroup(creq)
	case protocol.SyncGroupKey:
		return s.handleSyncGroup(creq)
	case protocol.DescribeGroupsKey:
		return s.handleDescribeGroups(creq)
	case protocol.ListGroupsKey:
		return s.handleListGroups(creq)
	case protocol.ApiVersionsKey:
		return s.handleApiVersions(creq)
	case protocol.CreateTopicsKey:
		return s.handleCreateTopics(creq)
	case protocol.DescribeACLsKey:
		return s.handleDescribeACLs(creq)
	case protocol.CreateACLsKey:
		return s.handleCreateACLs(creq)
	case protocol.DeleteACLsKey:
		return s.handleDeleteACLs(creq)
	case protocol.DescribeConfigsKey:
		return s.handleDescribeConfigs(creq)
	case protocol.AlterConfigsKey:
		return s.handleAlterConfigs(creq)
	case protocol.IncrementalAlterConfigsKey:
		return s.handleIncrementalAlterConfigs(creq)
	case protocol.DeleteTopicsKey:
		return s.handleDeleteTopics(creq)
	case protocol.DeleteRecordsKey:
		return s.handleDeleteRecords(creq)
	case protocol.InitProducerIDKey:
		return s.handleInitProducerID(creq)
	case protocol.AddPartitionsToTxnKey:
		return s.handleAddPartitionsToTxn(creq)
	case protocol.AddOffsetsToTxnKey:
		return s.handleAddOffsetsToTxn(creq)
	case protocol.EndTxnKey:
		return s.handleEndTxn(creq)
	case protocol.WriteTxnMarkersKey:
		return s.handleWriteTxnMarkers(creq)
	case protocol.TxnOffsetCommitKey:
		return s.handleTxnOffsetCommit(creq)
	case protocol.DescribeTransactionsKey:
		return s.handleDescribeTransactions(creq)
	case protocol.ListTransactionsKey:
		return s.handleListTransactions(creq)
	case protocol.OffsetForLeaderEpochKey:
		return s.handleOffsetForLeaderEpoch(creq)
	case protocol.DescribeLogDirsKey:
		return s.handleDescribeLogDirs(creq)
	case protocol.CreatePartitionsKey:
		return s.handleCreatePartitions(creq)
	case protocol.DeleteGroupsKey:
		return s.handleDeleteGroups(creq)
	case protocol.ElectLeadersKey:
		return s.handleElectLeaders(creq)
	case protocol.AlterPartitionReassignmentsKey:
		return s.handleAlterPartitionReassignments(creq)
	case protocol.ListPartitionReassignmentsKey:
		return s.handleListPartitionReassignments(creq)
	case protocol.OffsetDeleteKey:
		return s.handleOffsetDelete(creq)
	case protocol.ConsumerGroupHeartbeatKey:
		return s.handleConsumerGroupHeartbeat(creq)
	case protocol.ConsumerGroupDescribeKey:
		return s.handleConsumerGroupDescribe(creq)
	case protocol.DescribeClusterKey:
		return s.handleDescribeCluster(creq)
	case protocol.DescribeProducersKey:
		return s.handleDescribeProducers(creq)
	case protocol.DescribeTopicPartitionsKey:
		return s.handleDescribeTopicPartitions(creq)
	case protocol.SaslHandshakeKey:
		return s.handleSaslHandshake(creq)
	case protocol.SaslAuthenticateKey:
		return s.handleSaslAuthenticate(creq)
	case protocol.DescribeUserScramCredentialsKey:
		return s.handleDescribeUserScramCredentials(creq)
	case protocol.AlterUserScramCredentialsKey:
		return s.handleAlterUserScramCredentials(creq)
	default:
		return nil, fmt.Errorf("no handler for %s", kmsg.NameForKey(creq.Key))
	}
}
