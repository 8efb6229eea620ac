# Shared by scripts/test and scripts/quickstart: finding PostgreSQL's binaries, and a private
# server under a folder of target/. Source it; it defines functions only.

# Prints the path of a PostgreSQL program: on PATH, else the newest /usr/lib/postgresql/*/bin.
find_pg_bin() {
  local name=$1 d
  if command -v "$name" >/dev/null 2>&1 && "$name" --version >/dev/null 2>&1; then command -v "$name"; return; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/$name" ] && { echo "$d/$name"; return; }
  done
  return 1
}

# initdb and postgres refuse to run as root: use the 'postgres' system user then.
run_as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Whether a server answers at a postgres:// URL (psql, or a TCP connect without psql).
pg_reachable() {
  local url=$1
  if command -v psql >/dev/null 2>&1; then
    psql "$url" -Atqc 'select 1' >/dev/null 2>&1
  else
    local hp=${url#*@}; hp=${hp%%/*}; local host=${hp%%:*} port=${hp##*:}
    [ "$port" = "$hp" ] && port=5432
    timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
  fi
}

# Starts (creating it first if needed) a private server with its data in DIR/data, on
# 127.0.0.1:PORT with trust auth for 'postgres'. Prints nothing on success but its steps.
start_private_pg() {
  local dir=$1 port=$2 who=$3 initdb pg_ctl
  if ! initdb=$(find_pg_bin initdb) || ! pg_ctl=$(find_pg_bin pg_ctl); then
    echo "error: no PostgreSQL server binaries (initdb, pg_ctl) were found to start a private one." >&2
    echo "       Install the Debian package 'postgresql' (apt-get install postgresql)," >&2
    echo "       or point the script at a server you have." >&2
    return 1
  fi
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$dir" postgres
    chown postgres "$dir"
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    echo "$who: creating a private PostgreSQL cluster in $dir/data"
    run_as_pg_owner "$initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log"
  fi
  if ! pg_reachable "postgres://postgres@127.0.0.1:$port/postgres"; then
    echo "$who: starting the private PostgreSQL on 127.0.0.1:$port"
    run_as_pg_owner "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=off" start
  fi
}

# Stops the private server with its data in DIR/data, if it runs.
stop_private_pg() {
  local dir=$1 pg_ctl
  if [ -f "$dir/data/postmaster.pid" ] && pg_ctl=$(find_pg_bin pg_ctl); then
    run_as_pg_owner "$pg_ctl" -D "$dir/data" -m fast stop || true
  fi
}
