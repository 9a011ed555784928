# Sourced by scripts/dev, scripts/test and .ci/run: make sure a PostgreSQL answers and export an
# admin DATABASE_URL for it. In order:
#   1. DATABASE_URL already set: used as is.
#   2. A server on 127.0.0.1:5432 (trust auth for user postgres, as on the dev machines and CI).
#   3. A throwaway cluster in .dev/postgres from the machine's PostgreSQL binaries, on port 55432
#      (installed from the distribution's packages first when missing and we are root).
#   4. A container (docker) on port 55432.

kubegate_port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

kubegate_pg_bindir() {
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return
    fi
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

ensure_postgres() {
    if [ -n "${DATABASE_URL:-}" ]; then
        return 0
    fi
    if kubegate_port_open 127.0.0.1 5432; then
        export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
        return 0
    fi
    local root port=55432
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    if kubegate_port_open 127.0.0.1 "$port"; then
        export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
        return 0
    fi
    local bindir
    bindir="$(kubegate_pg_bindir)"
    if [ -z "$bindir" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "postgres: installing the distribution's PostgreSQL packages" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        bindir="$(kubegate_pg_bindir)"
    fi
    if [ -n "$bindir" ]; then
        local data="$root/.dev/postgres"
        local run=()
        if [ "$(id -u)" = 0 ]; then
            # initdb refuses to run as root; the distribution's package creates this user.
            id postgres >/dev/null 2>&1 || useradd --system --home-dir "$root/.dev" postgres
            run=(runuser -u postgres --)
        fi
        mkdir -p "$root/.dev"
        if [ ! -f "$data/PG_VERSION" ]; then
            mkdir -p "$data"
            [ "$(id -u)" = 0 ] && chown postgres "$data"
            "${run[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
        fi
        [ "$(id -u)" = 0 ] && chown -R postgres "$data"
        echo "postgres: starting a throwaway cluster in $data on port $port" >&2
        "${run[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
            -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
        export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
        return 0
    fi
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        echo "postgres: starting a container on port $port" >&2
        docker run -d --rm --name kubegate-postgres -p "127.0.0.1:$port:5432" \
            -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16 >/dev/null
        for _ in $(seq 1 60); do kubegate_port_open 127.0.0.1 "$port" && break; sleep 1; done
        sleep 2
        export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
        return 0
    fi
    echo "postgres: no PostgreSQL found. Set DATABASE_URL, or install PostgreSQL (apt-get install postgresql), or Docker." >&2
    return 1
}
