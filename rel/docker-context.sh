#!/usr/bin/env bash
# Fills a Docker build context for rel/Dockerfile: the image is FROM
# scratch and nothing can be pulled, so everything it holds comes from
# here:
#
#   rel/docker-context.sh <context dir> <starcite binary>
#
#   starcite                         the binary (must be static: CGO_ENABLED=0)
#   root/etc/ssl/certs/ca-certificates.crt
#                                    this machine's CA bundle (TLS to S3,
#                                    Postgres, the JWKS endpoint)
#   root/etc/passwd, root/etc/group  a minimal user database: root and
#                                    starcite (uid/gid 10001)
#   root/tmp/                        an empty /tmp, mode 1777
#   data/, archive/                  empty mount points, owned by starcite
#                                    in the image
#
# `make docker` and the Docker test (test/docker) both use it.
set -euo pipefail

STARCITE_UID=10001

die() { echo "docker-context.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 <context dir> <starcite binary>"
ctx=$1
bin=$2
[ -x "$bin" ] || die "$bin is not an executable (run make build first)"
if command -v readelf >/dev/null 2>&1 && readelf -l "$bin" 2>/dev/null | grep -q 'program interpreter'; then
	die "$bin is dynamically linked; the image is FROM scratch (build with CGO_ENABLED=0)"
fi

# The bundle Go itself would read on this machine: SSL_CERT_FILE, else the
# first of the usual distribution paths.
ca=""
for f in "${SSL_CERT_FILE:-}" \
	/etc/ssl/certs/ca-certificates.crt \
	/etc/pki/tls/certs/ca-bundle.crt \
	/etc/ssl/ca-bundle.pem \
	/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem \
	/etc/ssl/cert.pem; do
	if [ -n "$f" ] && [ -s "$f" ]; then ca=$f; break; fi
done
[ -n "$ca" ] || die "no CA certificate bundle found (install ca-certificates or set SSL_CERT_FILE)"

# The classic builder copies a source directory's contents and creates the
# destination with mode 0755: items that need their own mode (/tmp) sit one
# level down, under root/, which is copied onto /.
mkdir -p "$ctx/root/etc/ssl/certs" "$ctx/root/tmp" "$ctx/data" "$ctx/archive"
cp "$bin" "$ctx/starcite"
chmod 0755 "$ctx/starcite"
cp "$ca" "$ctx/root/etc/ssl/certs/ca-certificates.crt"
cat > "$ctx/root/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
starcite:x:${STARCITE_UID}:${STARCITE_UID}:starcite:/data:/sbin/nologin
PASSWD
cat > "$ctx/root/etc/group" <<GROUP
root:x:0:
starcite:x:${STARCITE_UID}:
GROUP
chmod 0755 "$ctx/root" "$ctx/root/etc" "$ctx/root/etc/ssl" "$ctx/root/etc/ssl/certs" "$ctx/data" "$ctx/archive"
chmod 0644 "$ctx/root/etc/passwd" "$ctx/root/etc/group" "$ctx/root/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$ctx/root/tmp"
