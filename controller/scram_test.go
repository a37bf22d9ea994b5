package controller

import (
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestScramRecordsAndSnapshot(t *testing.T) {
	img := emptyImage()
	cred, err := NewScramCredential(ScramSHA256, []byte("salted"), []byte("salt"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	next, err := img.apply(1, []record{
		{Type: recUserScramCredential, Scram: &ScramCredentialRecord{Name: "alice", Mechanism: ScramSHA256, Credential: &cred}},
		{Type: recUserScramCredential, Scram: &ScramCredentialRecord{Name: "bob", Mechanism: ScramSHA512, Credential: &cred}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.ScramCredentials) != 0 || len(next.ScramCredentials) != 2 {
		t.Fatalf("the old image changed or the new one lacks credentials: %d, %d", len(img.ScramCredentials), len(next.ScramCredentials))
	}
	// Records go through the log's encoding.
	recs, err := decodeEntry(encodeEntry([]record{{Type: recRemoveUserScramCredential, Scram: &ScramCredentialRecord{Name: "bob", Mechanism: ScramSHA512}}}))
	if err != nil {
		t.Fatal(err)
	}
	after, err := next.apply(2, recs)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := after.ScramCredentials[ScramCredentialKey{"bob", ScramSHA512}]; ok || len(next.ScramCredentials) != 2 {
		t.Fatal("remove did not apply, or changed the previous image")
	}
	if _, err := after.apply(3, recs); err == nil {
		t.Fatal("removed a missing credential")
	}
	restored, _, err := decodeSnapshot(encodeSnapshot(next, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(restored.ScramCredentials, next.ScramCredentials) {
		t.Fatalf("snapshot: %+v, want %+v", restored.ScramCredentials, next.ScramCredentials)
	}
	if _, err := decodeEntry(encodeEntry([]record{{Type: recUserScramCredential, Scram: &ScramCredentialRecord{Name: "x", Mechanism: 9}}})); err == nil {
		t.Fatal("a record with an unknown mechanism decoded")
	}
}

func TestPlanScramAlteration(t *testing.T) {
	exists := func(k ScramCredentialKey) bool { return k == ScramCredentialKey{"alice", ScramSHA256} }
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	req.Deletions = []kmsg.AlterUserSCRAMCredentialsRequestDeletion{{Name: "alice", Mechanism: ScramSHA256}, {Name: "ghost", Mechanism: ScramSHA256}}
	req.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{
		{Name: "bob", Mechanism: ScramSHA512, Iterations: 8192, Salt: []byte("s"), SaltedPassword: []byte("p")},
		{Name: "carol", Mechanism: ScramSHA256, Iterations: 4095},
		{Name: "carol", Mechanism: ScramSHA512, Iterations: 4096}, // carol has failed already
		{Name: "dan", Mechanism: ScramSHA256, Iterations: 4096},
		{Name: "dan", Mechanism: ScramSHA512, Iterations: 4096},
	}
	a := PlanScramAlteration(req, exists)
	want := map[string]int16{"alice": 0, "ghost": kerr.ResourceNotFound.Code, "bob": 0, "carol": kerr.UnacceptableCredential.Code, "dan": kerr.DuplicateResource.Code}
	if len(a.Results) != len(want) {
		t.Fatalf("%d results", len(a.Results))
	}
	for _, r := range a.Results {
		if r.ErrorCode != want[r.User] {
			t.Errorf("%s: %d, want %d", r.User, r.ErrorCode, want[r.User])
		}
	}
	if len(a.Deletes) != 1 || len(a.Upserts) != 1 {
		t.Fatalf("deletes %v, upserts %v", a.Deletes, a.Upserts)
	}
}
