# shellcheck shell=bash
# Shared by scripts/test and scripts/quickstart: finding PostgreSQL's binaries, and a private
# server under a folder of target/. Source it; it defines functions only.

# Prints the path of a PostgreSQL program: on PATH, else the newest /usr/lib/postgresql/*/bin.
find_pg_bin() {
  local name=$1 d
  if command -v "$name" >/dev/null 2>&1 && "$name" --version >/dev/null 2>&1; then command -v "$name"; return; fi
  while read -r d; do
    [ -x "$d/$name" ] && { echo "$d/$name"; return; }
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
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

# Whether anything accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Prints the port of the private server with its data in DIR/data, if that server runs;
# status 1 otherwise. It runs when pg_ctl finds its postmaster alive AND the server answering
# on the port written in DIR/data/postmaster.pid names DIR/data as its data directory: a
# server of another checkout that happens to use the same port is never taken for ours.
private_pg_port() {
  local dir=$1 pg_ctl psql port datadir
  [ -f "$dir/data/postmaster.pid" ] || return 1
  pg_ctl=$(find_pg_bin pg_ctl) && psql=$(find_pg_bin psql) || return 1
  run_as_pg_owner "$pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || return 1
  port=$(sed -n 4p "$dir/data/postmaster.pid")
  [[ $port =~ ^[0-9]+$ ]] || return 1
  datadir=$("$psql" -h 127.0.0.1 -p "$port" -U postgres -XAtqc 'show data_directory' postgres 2>/dev/null) \
    || return 1
  [ "$(realpath -m "$datadir")" = "$(realpath -m "$dir/data")" ] || return 1
  echo "$port"
}

# Starts (creating it first if needed) a private server with its data in DIR/data, on
# 127.0.0.1:PORT with trust auth for 'postgres', or leaves it running if it already runs
# there. MODE is `durable` (the default: fsync on, for data meant to last) or `scratch`
# (fsync off: faster, and a machine crash may lose or corrupt the data; for test servers).
# A durable server found running with fsync off is restarted with it on.
# Fails with a message on stderr, starting nothing, when PORT is taken by anything else
# (another checkout's server, another program), or when this server runs on another port.
# Prints nothing on success but its steps.
start_private_pg() {
  local dir=$1 port=$2 who=$3 mode=${4:-durable} initdb pg_ctl psql running opts
  case $mode in
    durable) opts="" ;;
    scratch) opts=" -c fsync=off" ;;
    *) echo "error: start_private_pg: mode must be durable or scratch, not '$mode'" >&2; return 2 ;;
  esac
  if ! initdb=$(find_pg_bin initdb) || ! pg_ctl=$(find_pg_bin pg_ctl) || ! psql=$(find_pg_bin psql); then
    echo "error: no PostgreSQL server binaries (initdb, pg_ctl, psql) were found to start a private one." >&2
    echo "       Install the Debian package 'postgresql' (apt-get install postgresql)," >&2
    echo "       or point the script at a server you have." >&2
    return 1
  fi
  if running=$(private_pg_port "$dir"); then
    if [ "$running" != "$port" ]; then
      echo "error: the private PostgreSQL of $dir/data already runs on port $running, not $port" >&2
      return 1
    fi
    if [ "$mode" = durable ] && [ "$("$psql" -h 127.0.0.1 -p "$port" -U postgres -XAtqc 'show fsync' postgres)" != on ]; then
      echo "$who: restarting the private PostgreSQL on 127.0.0.1:$port with fsync on"
      run_as_pg_owner "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -m fast \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300$opts" restart >/dev/null
    fi
    return 0
  fi
  if port_in_use "$port"; then
    echo "error: 127.0.0.1:$port is taken by something other than the private PostgreSQL of $dir/data" >&2
    echo "       (another checkout's server, or another program)." >&2
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
  echo "$who: starting the private PostgreSQL on 127.0.0.1:$port (fsync $([ "$mode" = durable ] && echo on || echo off))"
  if ! run_as_pg_owner "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300$opts" start >/dev/null; then
    echo "error: the private PostgreSQL did not start; the end of $dir/server.log:" >&2
    tail -n 5 "$dir/server.log" >&2 || true
    return 1
  fi
}

# Stops the private server with its data in DIR/data, if it runs.
stop_private_pg() {
  local dir=$1 pg_ctl
  if [ -f "$dir/data/postmaster.pid" ] && pg_ctl=$(find_pg_bin pg_ctl); then
    run_as_pg_owner "$pg_ctl" -D "$dir/data" -m fast stop || true
  fi
}
