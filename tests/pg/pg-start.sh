#!/usr/bin/env bash
# Starts a throw-away PostgreSQL for the store tests (ctest's FIXTURES_SETUP "postgresql"; its pair
# is pg-stop.sh):   pg-start.sh <folder> <PostgreSQL bin dir>
#
# initdb in <folder>/data, a server listening on a Unix socket in <folder> and on no TCP port, a
# superuser named augserve that the socket trusts (the folder is private to its owner), and the
# tests' URL, postgresql://augserve@<folder, %-encoded>/<database>, in <folder>/url. Each build
# folder has its own <folder> (tests/CMakeLists.txt derives it from the build path), so the
# Release and the sanitizer builds never share an instance. A folder left by a killed run is
# stopped and removed first.
#
# initdb and postgres refuse to run as root, and CI runs as root: then the cluster belongs to the
# postgres user (made by Debian's postgresql-common; AUGSERVE_PG_USER names another) and every
# PostgreSQL command runs as that user through runuser. Root's tests still connect: they reach
# the socket as root and log in as augserve.
#
# Without the binaries it prints why and succeeds: the tests that need the server skip (77) on
# the same check.
set -euo pipefail
dir=${1:?usage: pg-start.sh <folder> <PostgreSQL bin dir>}
bin=${2:?usage: pg-start.sh <folder> <PostgreSQL bin dir>}
here=$(dirname "$0")
source "$here/pg-common.sh"

if ! pg_binaries_present "$bin"; then
  echo "pg-start: no PostgreSQL binaries in $bin (initdb, pg_ctl, postgres): the PostgreSQL tests skip"
  exit 0
fi
pg_remove "$dir" "$bin"
mkdir -m 0700 "$dir"
[[ -z "$as_user" ]] || chown "$as_user": "$dir"

# --no-sync, fsync=off: a test database needs no durability, and the fsyncs would make each
# CREATE DATABASE slow.
as_owner "$bin/initdb" -D "$dir/data" -U augserve --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" \
  || { cat "$dir/initdb.log" >&2; exit 1; }
if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
  -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=off \
      -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null; then
  cat "$dir/server.log" >&2
  exit 1
fi
printf 'postgresql://augserve@%s/' "${dir//\//%2F}" >"$dir/url"
echo "pg-start: PostgreSQL running in $dir: $(cat "$dir/url")"
