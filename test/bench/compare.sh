#!/usr/bin/env bash
# make bench-compare: the closed-loop append workload of `starcite bench`
# against the local 3-node Starcite cluster, then the same workload against
# a local 3-node NATS JetStream cluster (R3, sync_interval: always), one
# after the other on this machine, and the ratio of the two.
#
#   STARCITE_BIN   starcite binary (default bin/starcite)
#   BENCH_OUT      results directory (default bench-results)
#   BENCH_DURATION measured time per level (default 10s)
#   BENCH_WARMUP   warm-up per level (default 2s)
#   BENCH_PRODUCERS producer counts (default 1,16,64)
#
# Each program stops the servers it started, also on failure or Ctrl-C
# (and the kernel kills them should a program die without cleaning up).
set -euo pipefail

BIN="${STARCITE_BIN:-bin/starcite}"
OUT="${BENCH_OUT:-bench-results}"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-2s}"
PRODUCERS="${BENCH_PRODUCERS:-1,16,64}"
NATS_VERSION=v2.15.2

[ -x "$BIN" ] || { echo "no $BIN: run make build first" >&2; exit 1; }
NATS_SERVER=$(command -v nats-server || true)
if [ -z "$NATS_SERVER" ]; then
	NATS_SERVER="$(go env GOPATH)/bin/nats-server"
	if [ ! -x "$NATS_SERVER" ]; then
		echo "installing nats-server $NATS_VERSION (go install)..."
		go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
	fi
fi

tmp=$(mktemp -d)
child=
cleanup() {
	if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run a program in the background and wait for it, so that a signal to
# this script reaches the program through cleanup.
run() {
	"$@" &
	child=$!
	wait "$child"
	child=
}

go build -o "$tmp/natsbench" ./test/bench/natsbench
mkdir -p "$OUT"
stamp=$(date +%Y%m%d-%H%M%S)
ours="$OUT/compare-starcite-$stamp.json"
theirs="$OUT/compare-nats-$stamp.json"

run "$BIN" bench --cluster --workloads closed --auth none,jwt --producers "$PRODUCERS" \
	--duration "$DURATION" --warmup "$WARMUP" --json "$ours"
run "$tmp/natsbench" --nats-server "$NATS_SERVER" --producers "$PRODUCERS" \
	--duration "$DURATION" --warmup "$WARMUP" --json "$theirs" --starcite "$ours"
