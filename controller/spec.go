package controller

// CreateTopicSpec is one topic to create (a CreateTopicsRequest topic).
type CreateTopicSpec struct {
	Name string
	// NumPartitions -1 takes num.partitions.
	NumPartitions int32
	// ReplicationFactor -1 takes default.replication.factor.
	ReplicationFactor int16
	// Assignment optionally lists each partition's replicas; the counts
	// above must then be -1 (or match).
	Assignment [][]int32
	Configs    map[string]string
	// ValidateOnly runs every check and creates nothing.
	ValidateOnly bool
}
