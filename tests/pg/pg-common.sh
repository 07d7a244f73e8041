# What pg-start.sh and pg-stop.sh share (sourced).

# The user that owns the cluster: empty for the current one, or, as root (initdb and postgres
# refuse root), AUGSERVE_PG_USER or postgres.
as_user=""
if [[ $(id -u) -eq 0 ]]; then
  as_user=${AUGSERVE_PG_USER:-postgres}
  id "$as_user" >/dev/null 2>&1 || {
    echo "pg: running as root, and there is no user $as_user to own the test cluster" >&2
    exit 1
  }
fi

# That user may not enter the caller's folder (a checkout under /root): the commands run from /.
cd /

# Runs a command as the cluster's owner.
as_owner() {
  if [[ -n "$as_user" ]]; then runuser -u "$as_user" -- "$@"; else "$@"; fi
}

pg_binaries_present() {
  [[ -x "$1/initdb" && -x "$1/pg_ctl" && -x "$1/postgres" ]]
}

# Stops the server of folder $1 if one runs (immediate: nothing in it needs keeping) and removes
# the folder.
pg_remove() {
  local dir=$1 bin=$2
  [[ -e "$dir" ]] || return 0
  if [[ -f "$dir/data/postmaster.pid" ]] && pg_binaries_present "$bin"; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}
