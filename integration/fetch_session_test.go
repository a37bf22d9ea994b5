package integration

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KIP-227 at the wire: a full fetch opens a session; incremental fetches
// carry only what changed and are answered with only the partitions that have
// news; epochs are checked; forgotten partitions leave the session.
func TestFetchSessions(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	adm := b.admin(t)
	createTopic(t, adm, "sess", 2, nil)
	id := topicID(t, adm, "sess")
	cl := b.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceSync(t, cl, &kgo.Record{Topic: "sess", Partition: 0, Value: []byte("p0")})

	type part struct {
		p      int32
		offset int64
	}
	fetch := func(sessionID, epoch int32, parts []part, forget []int32) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.MaxBytes, req.SessionID, req.SessionEpoch = 1<<20, sessionID, epoch
		if len(parts) > 0 {
			rt := kmsg.NewFetchRequestTopic()
			rt.TopicID = id
			for _, p := range parts {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = p.p, p.offset, 1<<20, -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		if len(forget) > 0 {
			req.ForgottenTopics = append(req.ForgottenTopics, kmsg.FetchRequestForgottenTopic{TopicID: id, Partitions: forget})
		}
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	partitions := func(resp *kmsg.FetchResponse) map[int32]int {
		out := map[int32]int{}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				out[rp.Partition] = len(rp.RecordBatches)
			}
		}
		return out
	}

	// Full fetch, epoch 0: a new session, every partition answered.
	full := fetch(0, 0, []part{{0, 0}, {1, 0}}, nil)
	sid := full.SessionID
	if sid == 0 || full.ErrorCode != 0 || len(partitions(full)) != 2 || partitions(full)[0] == 0 {
		t.Fatalf("full fetch: session %d, error %d, partitions %v", sid, full.ErrorCode, partitions(full))
	}

	// Incremental, epoch 1: partition 0 moved past its record; nothing changed.
	if got := partitions(fetch(sid, 1, []part{{0, 1}}, nil)); len(got) != 0 {
		t.Fatalf("incremental fetch with no news answered %v", got)
	}

	// New data on partition 1 only: only partition 1 comes back.
	produceSync(t, cl, &kgo.Record{Topic: "sess", Partition: 1, Value: []byte("p1")})
	if got := partitions(fetch(sid, 2, nil, nil)); len(got) != 1 || got[1] == 0 {
		t.Fatalf("incremental fetch after a produce to partition 1: %v", got)
	}

	// Forget partition 1; new data there is no longer news for this session.
	produceSync(t, cl, &kgo.Record{Topic: "sess", Partition: 1, Value: []byte("p1 again")})
	if got := partitions(fetch(sid, 3, nil, []int32{1})); len(got) != 0 {
		t.Fatalf("fetch after forgetting partition 1: %v", got)
	}

	// A stale epoch and an unknown session are refused.
	if code := fetch(sid, 3, nil, nil).ErrorCode; code != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("stale epoch: error %d", code)
	}
	if code := fetch(sid+1, 1, nil, nil).ErrorCode; code != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: error %d", code)
	}

	// Epoch -1 closes the session; it is gone afterwards.
	if resp := fetch(sid, -1, []part{{0, 0}}, nil); resp.SessionID != 0 || len(partitions(resp)) != 1 {
		t.Fatalf("closing fetch: session %d, partitions %v", resp.SessionID, partitions(resp))
	}
	if code := fetch(sid, 4, nil, nil).ErrorCode; code != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session still answers: error %d", code)
	}
}
