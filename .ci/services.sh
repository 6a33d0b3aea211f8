#!/usr/bin/env bash
# Test services for the archive adapters: PostgreSQL 15 (Debian packages) and
# versitygw (an S3-compatible gateway, posix backend), both on loopback only.
#
#   eval "$(.ci/services.sh up)"   install if missing, start, wait, print exports
#   .ci/services.sh env            print the export lines only
#   .ci/services.sh down           stop both
#   .ci/services.sh status         say what runs
#
# stdout carries nothing but `export` lines, so `eval "$(… up)"` is safe;
# progress and errors go to stderr. Every command is idempotent: `up` when
# everything already runs only checks and prints (fast path).
#
# State (versitygw data, pid and log) lives in STARCITE_SERVICES_DIR, default
# ${TMPDIR:-/tmp}/starcite-services; it must be on a filesystem with user
# xattrs (ext4, xfs). Postgres runs as Debian's cluster 15/main on
# 127.0.0.1:5432 with role and database `stream` (password `stream`).
# Installing and starting Postgres needs root (or sudo).
set -euo pipefail

STATE_DIR="${STARCITE_SERVICES_DIR:-${TMPDIR:-/tmp}/starcite-services}"
PG_VERSION=15
PG_CLUSTER=main
PG_PORT=5432
PG_URL="postgres://stream:stream@127.0.0.1:${PG_PORT}/stream?sslmode=disable"
S3_HOST=127.0.0.1
S3_PORT="${STARCITE_SERVICES_S3_PORT:-7070}"
S3_ENDPOINT="http://${S3_HOST}:${S3_PORT}"
S3_ACCESS_KEY=testkey
S3_SECRET_KEY=testsecret
VERSITYGW_MODULE=github.com/versity/versitygw/cmd/versitygw
VERSITYGW_VERSION=v1.8.0

S3_DATA="${STATE_DIR}/s3-data"
S3_PIDFILE="${STATE_DIR}/versitygw.pid"
S3_LOG="${STATE_DIR}/versitygw.log"

log() { echo "services.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		die "needs root (or sudo) to run: $*"
	fi
}

print_env() {
	cat <<ENV
export STARCITE_TEST_S3_ENDPOINT=${S3_ENDPOINT}
export STARCITE_TEST_S3_ACCESS_KEY_ID=${S3_ACCESS_KEY}
export STARCITE_TEST_S3_SECRET_ACCESS_KEY=${S3_SECRET_KEY}
export STARCITE_TEST_POSTGRES_URL='${PG_URL}'
ENV
}

# ---------------------------------------------------------------- Postgres

pg_answers() {
	PGCONNECT_TIMEOUT=2 psql "$PG_URL" -tAqc 'select 1' >/dev/null 2>&1
}

pg_cluster_running() {
	pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1
}

pg_up() {
	if command -v psql >/dev/null 2>&1 && pg_answers; then
		log "postgres ${PG_VERSION}/${PG_CLUSTER} already running on 127.0.0.1:${PG_PORT}"
		return
	fi
	export DEBIAN_FRONTEND=noninteractive
	if ! dpkg-query -W -f='${Status}' "postgresql-${PG_VERSION}" 2>/dev/null | grep -q 'ok installed'; then
		log "installing postgresql-${PG_VERSION} from Debian packages"
		as_root apt-get update -qq
		as_root apt-get install -y -qq --no-install-recommends \
			"postgresql-${PG_VERSION}" "postgresql-client-${PG_VERSION}" >/dev/null
	fi
	# The package creates 15/main on first install; recreate it if it was dropped.
	if ! pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {f=1} END {exit !f}'; then
		log "creating cluster ${PG_VERSION}/${PG_CLUSTER}"
		as_root pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" >/dev/null
	fi
	# Debian's postgresql.conf includes conf.d; pg_conftool would write the
	# address unquoted, which the server refuses.
	local conf="/etc/postgresql/${PG_VERSION}/${PG_CLUSTER}/conf.d/ci.conf"
	local want
	want="$(printf "listen_addresses = '127.0.0.1'\nport = %s" "$PG_PORT")"
	local changed=0
	if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
		printf '%s\n' "$want" | as_root tee "$conf" >/dev/null
		changed=1
	fi
	if pg_cluster_running; then
		if [ "$changed" -eq 1 ]; then
			log "restarting postgres to apply ${conf}"
			as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" restart
		fi
	else
		log "starting postgres ${PG_VERSION}/${PG_CLUSTER}"
		as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start
	fi
	local i
	for i in $(seq 1 300); do
		pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
		[ "$i" -eq 300 ] && die "postgres did not accept connections on 127.0.0.1:${PG_PORT} within 30 s (see /var/log/postgresql/)"
		sleep 0.1
	done
	as_root su postgres -c "psql -q -p ${PG_PORT} -v ON_ERROR_STOP=1" >/dev/null <<'SQL'
SELECT 'CREATE ROLE stream LOGIN PASSWORD ''stream'''
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stream') \gexec
SELECT 'CREATE DATABASE stream OWNER stream'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'stream') \gexec
SQL
	pg_answers || die "postgres runs but ${PG_URL%%@*}@… refuses the login"
	log "postgres ready on 127.0.0.1:${PG_PORT}"
}

pg_down() {
	if command -v pg_ctlcluster >/dev/null 2>&1 && pg_cluster_running; then
		log "stopping postgres ${PG_VERSION}/${PG_CLUSTER}"
		as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" stop
	else
		log "postgres not running"
	fi
}

# ---------------------------------------------------------------- versitygw

versitygw_bin() {
	if [ -n "${VERSITYGW_BIN:-}" ]; then
		echo "$VERSITYGW_BIN"
		return
	fi
	local gobin=""
	if command -v go >/dev/null 2>&1; then
		gobin="$(go env GOBIN)"
		[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
		echo "${gobin}/versitygw"
	elif command -v versitygw >/dev/null 2>&1; then
		command -v versitygw
	else
		die "neither go nor versitygw found in PATH"
	fi
}

s3_pid() {
	[ -f "$S3_PIDFILE" ] || return 1
	local pid
	pid="$(cat "$S3_PIDFILE")"
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

s3_answers() {
	# An unsigned request is answered (403), which is enough to know it serves.
	curl -s -o /dev/null --max-time 2 "${S3_ENDPOINT}/"
}

s3_up() {
	if s3_pid >/dev/null && s3_answers; then
		log "versitygw already running on ${S3_HOST}:${S3_PORT} (pid $(s3_pid))"
		return
	fi
	if s3_answers; then
		die "${S3_HOST}:${S3_PORT} is served by a process not started from ${STATE_DIR}; stop it or set STARCITE_SERVICES_S3_PORT"
	fi
	local bin
	bin="$(versitygw_bin)"
	if [ ! -x "$bin" ]; then
		command -v go >/dev/null 2>&1 || die "go is needed to install versitygw"
		log "installing versitygw ${VERSITYGW_VERSION} (go install, about a minute on a cold module cache)"
		(cd / && go install "${VERSITYGW_MODULE}@${VERSITYGW_VERSION}") >&2
		[ -x "$bin" ] || die "go install did not produce ${bin}"
	fi
	mkdir -p "$S3_DATA"
	log "starting versitygw on ${S3_HOST}:${S3_PORT}, data in ${S3_DATA}, log in ${S3_LOG}"
	ROOT_ACCESS_KEY="$S3_ACCESS_KEY" ROOT_SECRET_KEY="$S3_SECRET_KEY" \
		setsid "$bin" --port "${S3_HOST}:${S3_PORT}" --quiet posix "$S3_DATA" \
		>>"$S3_LOG" 2>&1 </dev/null &
	echo $! >"$S3_PIDFILE"
	local i
	for i in $(seq 1 300); do
		s3_answers && break
		if ! s3_pid >/dev/null; then
			tail -n 20 "$S3_LOG" >&2 || true
			die "versitygw exited at start (log: ${S3_LOG})"
		fi
		[ "$i" -eq 300 ] && die "versitygw did not answer on ${S3_ENDPOINT} within 30 s (log: ${S3_LOG})"
		sleep 0.1
	done
	log "versitygw ready on ${S3_ENDPOINT}"
}

s3_down() {
	local pid
	if ! pid="$(s3_pid)"; then
		log "versitygw not running"
		rm -f "$S3_PIDFILE"
		return
	fi
	log "stopping versitygw (pid ${pid})"
	kill "$pid" 2>/dev/null || true
	local i
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "versitygw ignored SIGTERM for 10 s; sending SIGKILL"
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$S3_PIDFILE"
}

# ---------------------------------------------------------------- main

cmd="${1:-}"
case "$cmd" in
up)
	mkdir -p "$STATE_DIR"
	pg_up
	s3_up
	print_env
	;;
down)
	s3_down
	pg_down
	;;
env)
	print_env
	;;
status)
	if s3_pid >/dev/null && s3_answers; then log "versitygw: running (pid $(s3_pid))"; else log "versitygw: stopped"; fi
	if command -v psql >/dev/null 2>&1 && pg_answers; then log "postgres: running"; else log "postgres: stopped"; fi
	;;
*)
	echo "usage: $0 up|down|env|status" >&2
	exit 2
	;;
esac
