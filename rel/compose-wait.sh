#!/usr/bin/env bash
# Waits until every container of a compose project passes its healthcheck
# (`starcite healthcheck`: GET /health/ready inside the container), then
# prints each node with its published HTTP address. Used by
# `make cluster-up`.
#
#   rel/compose-wait.sh [project] [timeout_s]     # defaults: starcite, 180
set -euo pipefail

PROJECT=${1:-starcite}
TIMEOUT=${2:-180}

containers=()
for c in $(docker ps --filter "label=com.docker.compose.project=$PROJECT" \
	--format '{{.Label "com.docker.compose.service"}} {{.Names}}' | sort | awk '{print $2}'); do
	containers+=("$c")
done
if [ ${#containers[@]} -eq 0 ]; then
	echo "compose-wait.sh: no running containers in compose project '$PROJECT'" >&2
	exit 1
fi

deadline=$(($(date +%s) + TIMEOUT))
for c in "${containers[@]}"; do
	until out=$(docker exec "$c" starcite healthcheck 2>&1); do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "compose-wait.sh: $c not ready after ${TIMEOUT}s: $out" >&2
			docker logs --tail 30 "$c" >&2 || true
			exit 1
		fi
		sleep 1
	done
done
for c in "${containers[@]}"; do
	node=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$c" | sed -n 's/^NODE_NAME=//p' | tail -n 1)
	addr=$(docker port "$c" 4000/tcp 2>/dev/null | head -n 1)
	printf '%-28s %-16s http://%s  ready\n' "$c" "$node" "${addr:-(not published)}"
done
