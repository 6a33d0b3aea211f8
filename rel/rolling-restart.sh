#!/usr/bin/env bash
# Rolling restart of a Starcite cluster running in Docker containers, one
# node at a time, with `starcite ops` run inside each container (its
# environment already holds NODE_NAME, STARCITE_COOKIE and
# STARCITE_CLUSTER_TLS_*):
#
#   drain → wait-drained → docker restart → wait-ready → undrain → wait-ready
#
# and, before the next node, the container's own healthcheck
# (GET /health/ready) must pass. Any step that fails or times out stops the
# script with a non-zero exit and a message naming the node and the step;
# the node is then left as it was (drained, if it got that far): look at
# it, then `docker exec <container> starcite ops undrain` when it is fine.
#
#   rel/rolling-restart.sh                    # every node of compose project $COMPOSE_PROJECT_NAME (starcite)
#   rel/rolling-restart.sh -p myproject       # another compose project
#   rel/rolling-restart.sh c1 c2 c3           # these containers, in this order
#
# Tunables (environment):
#   STARCITE_DRAIN_TIMEOUT_MS   wait-drained timeout (60000)
#   STARCITE_READY_TIMEOUT_MS   wait-ready timeout, and how long a restarted
#                               node may take to answer at all (180000)
#   STARCITE_STOP_TIMEOUT_S     SIGTERM → SIGKILL grace of docker restart (40)
set -euo pipefail

DRAIN_MS=${STARCITE_DRAIN_TIMEOUT_MS:-60000}
READY_MS=${STARCITE_READY_TIMEOUT_MS:-180000}
STOP_S=${STARCITE_STOP_TIMEOUT_S:-40}
PROJECT=${COMPOSE_PROJECT_NAME:-starcite}

log() { printf '%s rolling-restart: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	log "FAILED: $*"
	exit 1
}

# usage prints the header comment; exit status $1 (2: a usage error).
usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit "${1:-2}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	-p | --project)
		[ $# -ge 2 ] || usage
		PROJECT=$2
		shift 2
		;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	-*) usage ;;
	*) break ;;
	esac
done

containers=("$@")
if [ ${#containers[@]} -eq 0 ]; then
	# The project's containers, ordered by service name (starcite-1, -2, -3).
	list=$(docker ps -a --filter "label=com.docker.compose.project=$PROJECT" \
		--format '{{.Label "com.docker.compose.service"}} {{.Names}}' | sort | awk '{print $2}') ||
		die "docker ps failed"
	for c in $list; do containers+=("$c"); done
	[ ${#containers[@]} -gt 0 ] || die "no containers of compose project '$PROJECT' (use -p or name the containers)"
fi

# node_name prints the NODE_NAME a container runs as.
node_name() {
	docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$1" | sed -n 's/^NODE_NAME=//p' | tail -n 1
}

# step runs one command of the procedure; any failure is fatal.
step() {
	local what=$1
	shift
	log "$what: $*"
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/    /' >&2
	[ $rc -eq 0 ] || die "$what exited with status $rc"
}

# await retries a command until it succeeds or timeout_ms passes; for the
# moments when a container is not up yet and `docker exec` cannot work.
await() {
	local what=$1 timeout_ms=$2
	shift 2
	local deadline=$(($(date +%s) + (timeout_ms + 999) / 1000)) out rc
	log "$what: $* (retrying up to ${timeout_ms} ms)"
	while :; do
		rc=0
		out=$("$@" 2>&1) || rc=$?
		[ $rc -ne 0 ] || return 0
		if [ "$(date +%s)" -ge "$deadline" ]; then
			printf '%s\n' "$out" | sed 's/^/    /' >&2
			die "$what: still failing after ${timeout_ms} ms (status $rc)"
		fi
		sleep 1
	done
}

names=() # NODE_NAME of containers[i]
for c in "${containers[@]}"; do
	n=$(node_name "$c") || die "docker inspect $c failed"
	[ -n "$n" ] || die "container $c has no NODE_NAME in its environment"
	names+=("$n")
done

# Never start with a node already out: every node must be ready first.
for i in "${!containers[@]}"; do
	step "precheck: ${names[$i]} is ready" docker exec "${containers[$i]}" starcite ops --node "${names[$i]}" wait-ready "$READY_MS"
done

for i in "${!containers[@]}"; do
	c=${containers[$i]}
	n=${names[$i]}
	log "=== $n ($c)"
	ops=(docker exec "$c" starcite ops --node "$n")
	step "drain $n" "${ops[@]}" drain
	step "wait until $n is drained" "${ops[@]}" wait-drained "$DRAIN_MS"
	step "restart $c" docker restart -t "$STOP_S" "$c"
	await "wait until $n answers ops" "$READY_MS" "${ops[@]}" ready-nodes
	step "wait until $n is ready (still drained)" "${ops[@]}" wait-ready "$READY_MS"
	step "undrain $n" "${ops[@]}" undrain
	step "wait until $n is ready" "${ops[@]}" wait-ready "$READY_MS"
	await "wait until $n passes its healthcheck" "$READY_MS" docker exec "$c" starcite healthcheck
	log "$n restarted and serving"
done
log "done: ${#containers[@]} node(s) restarted one at a time"
