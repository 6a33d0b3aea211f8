#!/usr/bin/env bash
# A 3-node Starcite cluster on this machine, for development: each node
# binds its own loopback address (127.0.0.1, .2, .3) with the same ports,
# shares the local-file archive, and runs in the background.
#
#   rel/dev-cluster.sh start    # start (idempotent), wait until ready, print endpoints
#   rel/dev-cluster.sh stop     # stop all three (SIGTERM)
#   rel/dev-cluster.sh status   # readiness of each node
#
# Data, logs and pid files live under STARCITE_CLUSTER_DIR (default
# ./cluster-data). The nodes talk to each other over mutual TLS with dev
# certificates made once by `starcite cert` in $STARCITE_CLUSTER_DIR/certs
# (docs/security.md). Any STARCITE_* variable in the environment is passed
# on.
set -euo pipefail

BIN="${STARCITE_BIN:-./bin/starcite}"
DIR="${STARCITE_CLUSTER_DIR:-./cluster-data}"
PORT="${PORT:-4000}"
HOSTS=(127.0.0.1 127.0.0.2 127.0.0.3)
NODES=$(printf 'starcite@%s,' "${HOSTS[@]}"); NODES=${NODES%,}

running() { [ -f "$DIR/node$1.pid" ] && kill -0 "$(cat "$DIR/node$1.pid")" 2>/dev/null; }

start() {
	[ -x "$BIN" ] || { echo "no $BIN: run make build first" >&2; exit 1; }
	mkdir -p "$DIR"
	[ -f "$DIR/cookie" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/cookie"
	certs="$DIR/certs"
	[ -f "$certs/ca.pem" ] || "$BIN" cert ca --dir "$certs" > /dev/null
	for i in 1 2 3; do
		[ -f "$certs/node$i.pem" ] || "$BIN" cert node "node$i" --host "${HOSTS[$((i - 1))]}" --dir "$certs" > /dev/null
	done
	for i in 1 2 3; do
		if running "$i"; then continue; fi
		host=${HOSTS[$((i - 1))]}
		NODE_NAME="starcite@$host" STARCITE_HTTP_HOST="$host" PORT="$PORT" \
		CLUSTER_NODES="$NODES" STARCITE_WRITE_NODE_IDS="$NODES" \
		STARCITE_COOKIE="$(cat "$DIR/cookie")" \
		STARCITE_CLUSTER_TLS_CA="$certs/ca.pem" STARCITE_CLUSTER_TLS_CERT="$certs/node$i.pem" \
		STARCITE_CLUSTER_TLS_KEY="$certs/node$i-key.pem" \
		STARCITE_RAFT_DATA_DIR="$DIR/node$i" STARCITE_ARCHIVE_DIR="$DIR/archive" \
		STARCITE_AUTH_MODE="${STARCITE_AUTH_MODE:-none}" \
			nohup "$BIN" server >> "$DIR/node$i.log" 2>&1 &
		echo $! > "$DIR/node$i.pid"
	done
	for i in 1 2 3; do
		host=${HOSTS[$((i - 1))]}
		for _ in $(seq 1 300); do
			curl -fs "http://$host:$PORT/health/ready" > /dev/null 2>&1 && break
			running "$i" || { echo "node $i exited; see $DIR/node$i.log" >&2; exit 1; }
			sleep 0.1
		done
	done
	status
	echo "data and logs: $DIR (cookie in $DIR/cookie, TLS certificates in $certs)"
}

stop() {
	for i in 1 2 3; do
		if running "$i"; then kill "$(cat "$DIR/node$i.pid")"; fi
	done
	for i in 1 2 3; do
		while running "$i"; do sleep 0.1; done
		rm -f "$DIR/node$i.pid"
	done
	echo "stopped"
}

status() {
	for i in 1 2 3; do
		host=${HOSTS[$((i - 1))]}
		printf 'node %d  starcite@%-10s http://%s:%s  %s\n' "$i" "$host" "$host" "$PORT" \
			"$(curl -s "http://$host:$PORT/health/ready" 2>/dev/null || echo down)"
	done
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
