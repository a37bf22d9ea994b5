package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// API keys the broker dispatches on, named as in Kafka's ApiKeys.
const (
	ProduceKey                 = 0
	FetchKey                   = 1
	ListOffsetsKey             = 2
	MetadataKey                = 3
	OffsetCommitKey            = 8
	OffsetFetchKey             = 9
	FindCoordinatorKey         = 10
	JoinGroupKey               = 11
	HeartbeatKey               = 12
	LeaveGroupKey              = 13
	SyncGroupKey               = 14
	DescribeGroupsKey          = 15
	ListGroupsKey              = 16
	ApiVersionsKey             = 18
	CreateTopicsKey            = 19
	DeleteTopicsKey            = 20
	DeleteRecordsKey           = 21
	InitProducerIDKey          = 22
	OffsetForLeaderEpochKey    = 23
	AddPartitionsToTxnKey      = 24
	AddOffsetsToTxnKey         = 25
	EndTxnKey                  = 26
	WriteTxnMarkersKey         = 27
	TxnOffsetCommitKey         = 28
	DescribeACLsKey            = 29
	CreateACLsKey              = 30
	DeleteACLsKey              = 31
	DescribeConfigsKey         = 32
	AlterConfigsKey            = 33
	DescribeLogDirsKey         = 35
	CreatePartitionsKey        = 37
	DeleteGroupsKey            = 42
	IncrementalAlterConfigsKey = 44
	OffsetDeleteKey            = 47
	DescribeClusterKey         = 60
	DescribeProducersKey       = 61
	DescribeTransactionsKey    = 65
	ListTransactionsKey        = 66
	ConsumerGroupHeartbeatKey  = 68
	ConsumerGroupDescribeKey   = 69
	DescribeTopicPartitionsKey = 75
)

// Partition admin keys (a block of their own: the names are long).
const (
	ElectLeadersKey                = 43
	AlterPartitionReassignmentsKey = 45
	ListPartitionReassignmentsKey  = 46
)

// Authentication and SCRAM credential keys.
const (
	SaslHandshakeKey                = 17
	SaslAuthenticateKey             = 36
	DescribeUserScramCredentialsKey = 50
	AlterUserScramCredentialsKey    = 51
)

// VersionRange is an inclusive [Min, Max] range of API versions.
type VersionRange struct{ Min, Max int16 }

// supported is the one list of what kbroker serves (Redpanda's handlers.h,
// Kafka's ApiVersionsResponse). A key is listed only when every version in its
// range is implemented with Kafka's semantics: ApiVersions advertises exactly
// this table, and requests outside it are refused.
var supported = map[int16]VersionRange{
	// Produce v0-2 carry the old MessageSet format, which Kafka 4 refuses;
	// they are advertised anyway because librdkafka < 2.10 enables its
	// compression codecs only when Produce v2 is listed (KAFKA-18659).
	// v12 is transactions v2 (KIP-890 part 2); v13 (topic ids) is not served.
	ProduceKey:     {0, 12},
	FetchKey:       {4, 17},
	ListOffsetsKey: {1, 10},
	MetadataKey:    {0, 13},
	// Group APIs start where Kafka 4 starts them (KIP-896 removed older
	// OffsetCommit, OffsetFetch and JoinGroup versions).
	OffsetCommitKey:    {2, 10},
	OffsetFetchKey:     {1, 10},
	FindCoordinatorKey: {0, 6},
	JoinGroupKey:       {2, 9},
	HeartbeatKey:       {0, 4},
	LeaveGroupKey:      {0, 5},
	SyncGroupKey:       {0, 5},
	DescribeGroupsKey:  {0, 6},
	ListGroupsKey:      {0, 5},
	DeleteGroupsKey:    {0, 2},
	OffsetDeleteKey:    {0, 0},
	ApiVersionsKey:     {0, 4},
	CreateTopicsKey:    {2, 7},
	DeleteTopicsKey:    {1, 6},
	DeleteRecordsKey:   {0, 2},
	// Transactions v2 (KIP-890 part 2: Produce v12, EndTxn v5), with the
	// transaction.version feature finalized at 2 as Kafka 4 does.
	InitProducerIDKey:       {0, 5},
	AddPartitionsToTxnKey:   {0, 5},
	AddOffsetsToTxnKey:      {0, 4},
	EndTxnKey:               {0, 5},
	WriteTxnMarkersKey:      {1, 1},
	TxnOffsetCommitKey:      {0, 5},
	DescribeTransactionsKey: {0, 0},
	ListTransactionsKey:     {0, 2},
	OffsetForLeaderEpochKey: {2, 4},
	// ACLs: v1-3 as Kafka 4 (KIP-896 removed v0); SECURITY_DISABLED
	// without authorizer.class.name.
	DescribeACLsKey:            {1, 3},
	CreateACLsKey:              {1, 3},
	DeleteACLsKey:              {1, 3},
	DescribeConfigsKey:         {1, 4},
	AlterConfigsKey:            {0, 2},
	DescribeLogDirsKey:         {1, 4},
	CreatePartitionsKey:        {0, 3},
	IncrementalAlterConfigsKey: {0, 1},
	DescribeClusterKey:         {0, 2},
	DescribeProducersKey:       {0, 0},
	ConsumerGroupHeartbeatKey:  {0, 1},
	ConsumerGroupDescribeKey:   {0, 1},
	DescribeTopicPartitionsKey: {0, 0},

	// Partition admin (KIP-183, KIP-455, KIP-460, KIP-860), as Kafka 4
	// serves them.
	ElectLeadersKey:                {0, 2},
	AlterPartitionReassignmentsKey: {0, 1},
	ListPartitionReassignmentsKey:  {0, 0},

	// SASL (KIP-43, KIP-152, KIP-368) and SCRAM credentials (KIP-554).
	// SaslHandshake v0 (tokens as bare frames) is still in Kafka 4.
	SaslHandshakeKey:                {0, 1},
	SaslAuthenticateKey:             {0, 2},
	DescribeUserScramCredentialsKey: {0, 0},
	AlterUserScramCredentialsKey:    {0, 0},
}

// Supported reports whether the broker serves key at version.
func Supported(key, version int16) bool {
	r, ok := supported[key]
	return ok && version >= r.Min && version <= r.Max
}

// SupportedRange returns the served range of key.
func SupportedRange(key int16) (VersionRange, bool) {
	r, ok := supported[key]
	return r, ok
}

// ApiVersionsKeys lists the supported table in key order, as
// ApiVersionsResponse carries it.
func ApiVersionsKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(supported))
	for k := int16(0); k <= kmsg.MaxKey; k++ {
		if r, ok := supported[k]; ok {
			keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: r.Min, MaxVersion: r.Max})
		}
	}
	return keys
}
