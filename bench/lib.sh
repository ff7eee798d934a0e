# bench/lib.sh: what the shell benchmarks share, sourced by them (not run on
# its own): checks for the built programs, a temporary directory and the
# processes started into it (stopped by PID, the directory removed, at
# exit), waiting for a line in a process's log, the images the simulated
# devices update from and to, the outcome count of an aloft report, a free
# port and a throwaway PostgreSQL server.

me=bench/$(basename "$0")

# The real ESP-IDF build in the shared fixtures (1 MB, esp32-csi-node 0.6.4).
fixture=${ALOFT_FIXTURES:-$(dirname "$0")/../../shared/fixtures}/esp-idf/esp32s3-csi-node-v0.6.4.bin

bench_need() { # EXE...: each is built
    local exe
    for exe in "$@"; do
        if [ ! -x "$exe" ]; then
            echo "$me: $exe is not built (make bench builds it)" >&2
            exit 1
        fi
    done
}

bench_stop() { # every process in pids, by its PID
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}

bench_cleanup() {
    bench_stop
    rm -rf "$tmp"
}

bench_tmp() { # NAME: $tmp, a fresh directory, and pids, the processes started; both cleaned up at exit
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/aloft-bench-$1.XXXXXX")
    pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_fail() { # MESSAGE: stop everything, keep the logs (not the flash files) in $tmp, exit 1
    trap - EXIT
    echo "$me: $1; logs kept in $tmp" >&2
    bench_stop
    rm -f "$tmp"/node*.img
    exit 1
}

bench_wait_for() { # FILE TEXT PID WHAT: until FILE has TEXT; exit 1 when PID died or after 60 s
    local deadline=$((SECONDS + 60))
    until grep -q "$2" "$1" 2>/dev/null; do
        if ! kill -0 "$3" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
            echo "$me: $4 did not start:" >&2
            tail -5 "$1" >&2
            exit 1
        fi
        sleep 0.05
    done
}

bench_images() { # $image, the release (the fixture, else a synthesised 1,000,000-byte one), and $tmp/base.bin, an older one of its project
    if [ -f "$fixture" ]; then
        image=$fixture
        "$aloft" image make --chip esp32s3 --project esp32-csi-node --version 0.6.3 -o "$tmp/base.bin" >/dev/null
    else
        image=$tmp/app.bin
        "$aloft" image make --chip esp32s3 --project bench --version 2.0.0 --size 1000000 -o "$image" >/dev/null
        "$aloft" image make --chip esp32s3 --project bench --version 1.0.0 -o "$tmp/base.bin" >/dev/null
    fi
    image_bytes=$(wc -c <"$image")
}

bench_updated() { # REPORT: its summary's updated count (0 without one)
    tr -d ' \t\n' <"$1" | grep -o '"summary":{"updated":[0-9]*' | grep -o '[0-9]*$' || echo 0
}

bench_free_port() { # a port on 127.0.0.1 the kernel sees free now
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_pg_start: a throwaway PostgreSQL (Debian's server binaries) in
# $tmp/pg, as the user nobody when run as root (postgres refuses root), its
# PID in pids; sets pg_url to its database "bench". Returns 1 (its log in
# $tmp/pg.log) when there is none or it does not start.
pg_url=""
bench_pg_start() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -1)
    [ -n "$bin" ] && [ -x "$bin/postgres" ] || return 1
    local dir=$tmp/pg port
    port=$(bench_free_port)
    mkdir -p "$dir"
    chmod 755 "$tmp"
    local as=()
    if [ "$(id -u)" -eq 0 ]; then
        chown nobody "$dir"
        as=(runuser -u nobody --)
    fi
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U aloft --auth=trust -E UTF8 --locale=C >"$tmp/pg.log" 2>&1 || return 1
    # synchronous_commit=off: like SQLite's synchronous=NORMAL for check-ins
    "${as[@]}" "$bin/postgres" -D "$dir/data" -k "$dir" -p "$port" -c listen_addresses=127.0.0.1 \
        -c synchronous_commit=off >>"$tmp/pg.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 200); do
        if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
            "${as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U aloft bench >>"$tmp/pg.log" 2>&1 || return 1
            pg_url="postgres://aloft@127.0.0.1:$port/bench"
            return 0
        fi
        sleep 0.1
    done
    return 1
}
