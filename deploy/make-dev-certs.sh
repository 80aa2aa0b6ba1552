#!/usr/bin/env sh
# Create a development CA and a broker server certificate for docker-compose.yml.
#
#   deploy/make-dev-certs.sh [OUT_DIR] [EXTRA_DNS_NAME ...]
#
# Writes OUT_DIR (default: deploy/certs next to this script) with ca.crt, ca.key, server.crt and
# server.key. The server certificate is valid for "broker" (the compose service name), "localhost",
# 127.0.0.1 and any EXTRA_DNS_NAME (the public name gateways use to reach the broker).
# Development only: a real deployment uses certificates from the bureau's own CA. Existing files
# are never overwritten; delete the directory to start again.
set -eu

out=${1:-"$(dirname "$0")/certs"}
[ $# -gt 0 ] && shift
days=825

if [ -e "$out/ca.crt" ] || [ -e "$out/server.crt" ]; then
    echo "make-dev-certs: $out already holds certificates; remove them first" >&2
    exit 1
fi
mkdir -p "$out"
umask 077

san="DNS:broker,DNS:localhost,IP:127.0.0.1"
for name in "$@"; do
    san="$san,DNS:$name"
done

openssl req -x509 -new -nodes -newkey rsa:3072 -sha256 -days "$days" \
    -subj "/O=campus-iot dev/CN=campus-iot dev CA" \
    -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null

openssl req -new -nodes -newkey rsa:2048 -sha256 \
    -subj "/O=campus-iot dev/CN=broker" \
    -keyout "$out/server.key" -out "$out/server.csr" 2>/dev/null

printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
    "$san" > "$out/server.ext"
openssl x509 -req -sha256 -days "$days" -in "$out/server.csr" \
    -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -extfile "$out/server.ext" -out "$out/server.crt" 2>/dev/null
rm -f "$out/server.csr" "$out/server.ext" "$out/ca.srl"

# Mosquitto 2 reads the key after dropping to its own user (uid 1883 in the image), and the hub and
# agent containers read ca.crt as a non-root user: make those readable. ca.key stays private.
chmod 644 "$out/ca.crt" "$out/server.crt" "$out/server.key"
openssl verify -CAfile "$out/ca.crt" "$out/server.crt" >/dev/null
echo "make-dev-certs: wrote $out/{ca.crt,ca.key,server.crt,server.key} (SAN $san)"
