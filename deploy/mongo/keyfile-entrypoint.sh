#!/usr/bin/env bash
# Entry point of the `mongo` service (docker-compose.yml): make sure the replica-set keyfile exists, then hand over
# to the official image's own entry point, which creates the root user (MONGO_INITDB_ROOT_USERNAME/PASSWORD) and
# runs deploy/mongo/initdb/*.sh on the very first start, then execs `mongod --replSet rs0 --keyFile ...`.
#
# The keyfile is internal authentication between replica-set members; with --keyFile, mongod also enforces
# client authentication. It lives in the mongo_config volume (/data/configdb), so it survives restarts.
#   - MONGO_REPLICA_KEY set (env file): that value is written (6-1024 base64 characters; every member of a
#     multi-node replica set must use the same key);
#   - otherwise a random 1008-character key is generated once (enough for the single-node replica set).
# mongod refuses a keyfile readable by others: it must be mode 400/600 and owned by the `mongodb` user.
set -Eeuo pipefail

keyfile="${MONGO_KEYFILE:-/data/configdb/keyfile}"

if [ ! -s "$keyfile" ]; then
	mkdir -p "$(dirname "$keyfile")"
	umask 077
	if [ -n "${MONGO_REPLICA_KEY:-}" ]; then
		if ! printf '%s' "$MONGO_REPLICA_KEY" | grep -Eq '^[A-Za-z0-9+/=]{6,1024}$'; then
			echo >&2 "error: MONGO_REPLICA_KEY must be 6 to 1024 base64 characters"
			exit 1
		fi
		printf '%s\n' "$MONGO_REPLICA_KEY" > "$keyfile"
	else
		head -c 756 /dev/urandom | base64 -w 0 > "$keyfile"
	fi
	echo "keyfile-entrypoint: created replica-set keyfile $keyfile"
fi

chmod 400 "$keyfile"
if [ "$(id -u)" = '0' ]; then
	chown mongodb:mongodb "$keyfile"
fi

exec docker-entrypoint.sh "$@"
