#!/usr/bin/env bash
# Runs franz-go's own pkg/kgo integration suite (the version in go.mod)
# against a kbroker process on 127.0.0.1, and prints PASS/FAIL/SKIP counts,
# subtests included. Exits non-zero if any test that ran failed.
#
# Tests that need APIs kbroker does not serve yet are skipped by name below,
# each with the issue that brings them; the suite itself also skips (not
# fails) what the broker does not advertise, and those skips are counted.
#
#   integration/kgosuite/run.sh            # the suite as CI runs it
#   KGO_RUN='TestIssue810' run.sh           # one test
#   KGO_SKIP='' run.sh                      # everything, waiting tests too
#   KBROKER_NODES=3 run.sh                  # against a 3-node cluster
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
broker_pids=()
stop_brokers() {
	for pid in "${broker_pids[@]}"; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	done
	broker_pids=()
}
cleanup() {
	stop_brokers
	rm -rf "$work"
}
trap cleanup EXIT

# Waiting for what kbroker does not serve yet: share groups (KIP-932).
waiting=(
	TestShareGroup TestShareGroupAckOnClose TestShareGroupETL
	TestShareGroupOffsetsAdmin TestConsumeRegexShareSkipsInternal
)
default_skip="^($(IFS='|'; echo "${waiting[*]}"))\$"
skip=${KGO_SKIP-$default_skip}
run=${KGO_RUN:-.}

cd "$root"
echo "building kbroker and the kgo suite ($(go list -m -f '{{.Version}}' github.com/twmb/franz-go))" >&2
go build -o "$work/kbroker" ./cmd/kbroker
go test -c -o "$work/kgo.test" github.com/twmb/franz-go/pkg/kgo
kgodir=$(go list -f '{{.Dir}}' github.com/twmb/franz-go/pkg/kgo)

# KBROKER_NODES=3 runs the suite against a cluster of that many combined
# nodes (RF 3); the default is one node.
nodes=${KBROKER_NODES:-1}
start_broker() { # log file, extra --override arguments...
	local log=$1
	shift
	"$work/kbroker" --ephemeral --override "http.listener=127.0.0.1:0" "$@" >"$log" 2>&1 &
	broker_pids+=("$!")
}
wait_started() { # log file [listener name]; prints the listener's address, or fails
	local a= name=${2:-PLAINTEXT}
	for _ in $(seq 400); do
		a=$(sed -n 's/.*msg="kbroker started".* listeners="\{0,1\}\[[^]]*\<'"$name"':\/\/\([0-9.:]*\).*/\1/p' "$1")
		[ -n "$a" ] && break
		grep -q 'msg="cannot start"' "$1" && break
		sleep 0.05
	done
	if [ -z "$a" ]; then
		echo "kbroker did not start:" >&2
		cat "$1" >&2
		return 1
	fi
	echo "$a"
}
# free_port prints a port below the ephemeral range (so no outgoing
# connection holds it) that nothing on 127.0.0.1 listens on and that this
# script has not handed out yet.
used_ports=" "
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		case "$used_ports" in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			used_ports+="$p "
			echo "$p"
			return
		fi
	done
}
# The SCRAM tests (TestSCRAMAuth, TestSCRAMAuthBadCredentials) log in as
# this user on a SASL_PLAINTEXT listener of the single node; kgo's
# KGO_TEST_SCRAM is user:pass(:256|512).
scram_user=kgo-scram scram_pass=kgo-scram-secret
scram_env=()
if [ "$nodes" -le 1 ]; then
	# Port 0: the broker's start-up line names the port the OS picked.
	start_broker "$work/broker.log" --override "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0" \
		--override "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512" \
		--override "kbroker.scram.bootstrap.users=SCRAM-SHA-256=[name=$scram_user,password=$scram_pass];SCRAM-SHA-512=[name=$scram_user,password=$scram_pass]"
	addr=$(wait_started "$work/broker.log") || exit 1
	scram_addr=$(wait_started "$work/broker.log" SASL_PLAINTEXT) || exit 1
	scram_env=(KGO_TEST_SCRAM_SEEDS="$scram_addr" KGO_TEST_SCRAM="$scram_user:$scram_pass")
	rf=1
else
	# A port can still be taken between the check and the bind: then the
	# whole cluster starts again on other ports.
	for attempt in 1 2 3; do
		voters=
		ports=()
		for i in $(seq "$nodes"); do
			ports+=("$(free_port)")
			voters+="${voters:+,}$i@127.0.0.1:${ports[-1]}"
		done
		for i in $(seq "$nodes"); do
			start_broker "$work/broker-$i.log" --override "node.id=$i" \
				--override "listeners=PLAINTEXT://127.0.0.1:$(free_port),CONTROLLER://127.0.0.1:${ports[$((i - 1))]}" \
				--override controller.listener.names=CONTROLLER --override "controller.quorum.voters=$voters" \
				--override "default.replication.factor=$nodes" --override "offsets.topic.replication.factor=$nodes"
		done
		addr=
		started=true
		for i in $(seq "$nodes"); do
			if a=$(wait_started "$work/broker-$i.log"); then
				addr+="${addr:+,}$a"
			else
				started=false
				break
			fi
		done
		$started && break
		stop_brokers
		[ "$attempt" -lt 3 ] || exit 1
		echo "starting the cluster again on other ports" >&2
	done
	ln -sf "$work/broker-1.log" "$work/broker.log"
	rf=$nodes
fi
echo "kbroker: $nodes node(s) at $addr" >&2

# TestOptValuesCoversEveryOption reads config.go from the working directory.
cd "$kgodir"
set +e
env "${scram_env[@]}" KGO_SEEDS="$addr" KGO_TEST_RF="$rf" KGO_TEST_RECORDS="${KGO_TEST_RECORDS:-100000}" KGO_LOG_LEVEL=none \
	"$work/kgo.test" -test.v -test.timeout 15m -test.run "$run" ${skip:+-test.skip "$skip"} >"$work/suite.log" 2>&1
status=$?
set -e

pass=$(grep -cE '^\s*--- PASS' "$work/suite.log" || true)
fail=$(grep -cE '^\s*--- FAIL' "$work/suite.log" || true)
skipped=$(grep -cE '^\s*--- SKIP' "$work/suite.log" || true)
top_pass=$(grep -cE '^--- PASS' "$work/suite.log" || true)
top_fail=$(grep -cE '^--- FAIL' "$work/suite.log" || true)
top_skip=$(grep -cE '^--- SKIP' "$work/suite.log" || true)

grep -E '^\s*--- (FAIL|SKIP)' "$work/suite.log" || true
if [ "$status" -ne 0 ]; then
	# What the tests reported (a failure's message is one of these lines;
	# cleanup chatter aside), then the end of the output.
	echo "---- test messages ----"
	grep -E '^\s+[A-Za-z0-9_]+_test\.go:[0-9]+: ' "$work/suite.log" | grep -vE ': deleting (topic|group) ' | tail -n 60 || true
	echo "---- suite output (tail) ----"
	tail -n 60 "$work/suite.log"
	echo "---- broker log (tail) ----"
	tail -n 40 "$work/broker.log"
	for log in "$work"/broker-*.log; do
		[ -e "$log" ] || continue
		echo "---- warnings and errors in $(basename "$log") ----"
		grep -E 'level=(WARN|ERROR)|active controller|coordinating' "$log" | grep -v 'raft: ' | tail -n 30 || true
	done
	if [ -n "${KBROKER_KEEP_LOGS:-}" ]; then
		mkdir -p "$KBROKER_KEEP_LOGS" && cp "$work"/*.log "$work/suite.log" "$KBROKER_KEEP_LOGS"/ || true
	fi
fi
echo "kgo suite: top-level $top_pass passed, $top_fail failed, $top_skip skipped; not run (waiting): ${#waiting[@]}"
echo "kgosuite: $pass passed, $fail failed, $skipped skipped"
exit "$status"
