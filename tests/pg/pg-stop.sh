#!/usr/bin/env bash
# Stops the PostgreSQL pg-start.sh started and removes its folder, whatever the tests did
# (ctest's FIXTURES_CLEANUP "postgresql" runs after the last test that needs it, failed or not):
#   pg-stop.sh <folder> <PostgreSQL bin dir>
set -euo pipefail
dir=${1:?usage: pg-stop.sh <folder> <PostgreSQL bin dir>}
bin=${2:?usage: pg-stop.sh <folder> <PostgreSQL bin dir>}
here=$(dirname "$0")
source "$here/pg-common.sh"
pg_remove "$dir" "$bin"
