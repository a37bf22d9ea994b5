package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
	"github.com/kbroker/kbroker/storage"
	"github.com/kbroker/kbroker/txn"
)

// markerCommitTimeout bounds how long a marker waits for the ISR, and
// writeTxnMarkers for all of a transaction's markers; the coordinator
// retries what failed.
const markerCommitTimeout = 30 * time.Second

// writeTxnMarkers ends a transaction's partitions in a cluster (Kafka's
// TransactionMarkerChannelManager): each partition's marker goes to its
// leader, this broker included. It returns once every leader has the
// marker committed; NOT_LEADER_OR_FOLLOWER and the like are retried against the
// new leader until the timeout.
func (c *cluster) writeTxnMarkers(m storage.EndTxnMarker, partitions []txn.TopicPartition) error {
	ctx, cancel := context.WithTimeout(context.Background(), markerCommitTimeout)
	defer cancel()
	pending := map[topicPartition]bool{}
	for _, tp := range partitions {
		pending[topicPartition{tp.Topic, tp.Partition}] = true
	}
	var lastErr error
	for backoff := 10 * time.Millisecond; len(pending) > 0; backoff = min(2*backoff, time.Second) {
		byLeader := map[int32][]topicPartition{}
		for tp := range pending {
			reg, ok := c.registration(tp.topic, tp.partition)
			if !ok {
				delete(pending, tp) // deleted: Kafka drops its markers too
				continue
			}
			byLeader[reg.Leader] = append(byLeader[reg.Leader], tp)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for leader, tps := range byLeader {
			if leader < 0 {
				lastErr = kerr.LeaderNotAvailable
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				done, err := c.sendTxnMarkers(ctx, leader, m, tps)
				mu.Lock()
				defer mu.Unlock()
				for _, tp := range done {
					delete(pending, tp)
				}
				if err != nil {
					lastErr = err
				}
			}()
		}
		wg.Wait()
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("broker: transaction markers not written to %d partitions: %w", len(pending), errors.Join(lastErr, ctx.Err()))
		case <-c.s.closing:
			return kerr.CoordinatorNotAvailable
		}
	}
	return nil
}

// sendTxnMarkers writes m to tps, all led by leader, and returns those
// that are done.
func (c *cluster) sendTxnMarkers(ctx context.Context, leader int32, m storage.EndTxnMarker, tps []topicPartition) ([]topicPartition, error) {
	s := c.s
	if leader == s.cfg.NodeID {
		var done []topicPartition
		var errs []error
		for _, tp := range tps {
			if code := s.writeTxnMarkerFor(nil, tp.topic, tp.partition, m); code != 0 {
				errs = append(errs, kerr.ErrorForCode(code))
				continue
			}
			done = append(done, tp)
		}
		return done, errors.Join(errs...)
	}
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.SetVersion(1)
	rm := kmsg.NewWriteTxnMarkersRequestMarker()
	rm.ProducerID, rm.ProducerEpoch, rm.CoordinatorEpoch, rm.Committed = m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, m.Commit
	byTopic := map[string]int{}
	for _, tp := range tps {
		i, ok := byTopic[tp.topic]
		if !ok {
			i = len(rm.Topics)
			byTopic[tp.topic] = i
			rt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			rt.Topic = tp.topic
			rm.Topics = append(rm.Topics, rt)
		}
		rm.Topics[i].Partitions = append(rm.Topics[i].Partitions, tp.partition)
	}
	req.Markers = append(req.Markers, rm)
	kresp, err := c.request(ctx, leader, req)
	if err != nil {
		return nil, err
	}
	var done []topicPartition
	var errs []error
	for _, sm := range kresp.(*kmsg.WriteTxnMarkersResponse).Markers {
		for _, st := range sm.Topics {
			for _, sp := range st.Partitions {
				if sp.ErrorCode != 0 {
					errs = append(errs, fmt.Errorf("%s-%d on broker %d: %w", st.Topic, sp.Partition, leader, kerr.ErrorForCode(sp.ErrorCode)))
					continue
				}
				done = append(done, topicPartition{st.Topic, sp.Partition})
			}
		}
	}
	return done, errors.Join(errs...)
}

// request sends req to broker id on the inter-broker listener, over one
// connection per broker kept for reuse (Kafka's inter-broker
// NetworkClient); a failed connection is dropped and dialled again next
// time.
func (c *cluster) request(ctx context.Context, id int32, req kmsg.Request) (kmsg.Response, error) {
	c.clientsMu.Lock()
	if c.clients == nil {
		c.clients = map[int32]*protocol.Client{}
	}
	cl := c.clients[id]
	c.clientsMu.Unlock()
	if cl == nil {
		ep, ok := c.endpoint(id, c.s.cfg.InterBrokerListener())
		if !ok {
			return nil, fmt.Errorf("broker %d has no %s endpoint: %w", id, c.s.cfg.InterBrokerListener(), kerr.BrokerNotAvailable)
		}
		var err error
		cl, err = protocol.Dial(ctx, net.JoinHostPort(ep.Host, strconv.Itoa(int(ep.Port))), "kbroker-"+strconv.Itoa(int(c.s.cfg.NodeID)))
		if err != nil {
			return nil, err
		}
		c.clientsMu.Lock()
		if old := c.clients[id]; old != nil {
			cl.Close()
			cl = old
		} else {
			c.clients[id] = cl
		}
		c.clientsMu.Unlock()
	}
	resp, err := cl.Request(ctx, req)
	if err != nil {
		c.clientsMu.Lock()
		if c.clients[id] == cl {
			delete(c.clients, id)
		}
		c.clientsMu.Unlock()
	}
	return resp, err
}

// verifyPartition asks the coordinator on another broker whether a
// transactional produce to tp belongs to the producer's ongoing
// transaction, or with op AddPartition adds tp to it (Kafka's
// AddPartitionsToTxnManager: AddPartitionsToTxn v5 from broker to
// coordinator, VerifyOnly unless transactions v2 add implicitly). A
// coordinator that cannot be reached is COORDINATOR_NOT_AVAILABLE, which
// the produce path answers as a retriable error.
func (c *cluster) verifyPartition(transactionalID string, producerID int64, epoch int16, tp txn.TopicPartition, op txn.TransactionSupportedOperation) error {
	coordinator := c.coordinatorID()
	if coordinator < 0 {
		return kerr.CoordinatorNotAvailable
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.SetVersion(5)
	t := kmsg.NewAddPartitionsToTxnRequestTransaction()
	t.TransactionalID, t.ProducerID, t.ProducerEpoch, t.VerifyOnly = transactionalID, producerID, epoch, op != txn.AddPartition
	rt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
	rt.Topic, rt.Partitions = tp.Topic, []int32{tp.Partition}
	t.Topics = append(t.Topics, rt)
	req.Transactions = append(req.Transactions, t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kresp, err := c.request(ctx, coordinator, req)
	if err != nil {
		return kerr.CoordinatorNotAvailable
	}
	resp := kresp.(*kmsg.AddPartitionsToTxnResponse)
	code := resp.ErrorCode
	for _, rt := range resp.Transactions {
		for _, st := range rt.Topics {
			for _, sp := range st.Partitions {
				if code == 0 {
					code = sp.ErrorCode
				}
			}
		}
	}
	if code == 0 {
		return nil
	}
	ke, _ := kerr.ErrorForCode(code).(*kerr.Error)
	return txn.VerificationError(ke, op)
}
