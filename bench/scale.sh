#!/usr/bin/env bash
# bench/scale: what a staged rollout costs aloftd per check-in (issue 15
# "Benchmark"). wrk sends GET /update with a real ESP32's HTTPUpdate headers,
# one MAC per request from a Lua script, in three phases:
#   (a) no rollout, all current: $BENCH_MACS devices (default 50,000),
#       cycling, already on the newest release: 304 from memory;
#   (b) a 50 % rollout of 1.1.0 (1.0.0 before it), first contacts: every
#       request a device never seen (1.0.0); the half inside the share gets
#       the 200 and is recorded as offered, the rest a 304;
#   (c) the devices of (b) come back, cycling, on 1.1.0: each one offered
#       is settled "updated" on its first return (one transaction that
#       changes its outcome and its stage's counters), later returns cost
#       no database work.
# Target: (c) >= 0.5x (a), on SQLite and on PostgreSQL in the same run.
# Prints req/s, p99 and the ratio to (a), and the rollout's counters after
# (c). The release is a 64 KB image: the 200s of (b) measure the server,
# not the copy of a large body.
#
# aloftd gets --threads $BENCH_THREADS (default: the number of CPUs); wrk
# runs $BENCH_CONNS connections (default 32) in one thread for
# $BENCH_SECONDS seconds (default 8) per phase. Every process is started
# here and stopped by its PID; the temporary directory is removed at the end.
#
# usage: bench/scale.sh [BUILD_DIR]    (default: build; run by bench/run.sh)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

build=${1:-build}
aloft=$build/bin/aloft
aloftd=$build/bin/aloftd
threads=${BENCH_THREADS:-$(nproc)}
conns=${BENCH_CONNS:-32}
seconds=${BENCH_SECONDS:-8}
macs=${BENCH_MACS:-50000}

bench_need "$aloft" "$aloftd"
for tool in wrk curl python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "$me: $tool not found; run scripts/deps.sh" >&2
        exit 1
    fi
done
bench_tmp scale

"$aloft" image make --chip esp32s3 --project bench --version 1.0.0 --size 65872 -o "$tmp/1.0.0.bin" >/dev/null
"$aloft" image make --chip esp32s3 --project bench --version 1.1.0 --size 65872 -o "$tmp/1.1.0.bin" >/dev/null

# lua VERSION PREFIX COUNT: check-ins on VERSION from MACs PREFIX:xx:xx:xx,
# the first COUNT of them in turn (0: a new one every request).
lua() {
    cat <<EOF
local n = -1
local count = $3
request = function()
    n = n + 1
    if count > 0 then n = n % count end
    local mac = string.format("$2:%02X:%02X:%02X", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
    return wrk.format("GET", "/update?dev=bench&ver=$1", {
        ["User-Agent"] = "ESP32-http-Update",
        ["x-ESP32-STA-MAC"] = mac,
        ["x-ESP32-AP-MAC"] = mac,
        ["x-ESP32-free-space"] = "1310720",
        ["x-ESP32-sketch-size"] = "65872",
        ["x-ESP32-chip-size"] = "4194304",
        ["x-ESP32-sdk-version"] = "v5.1.2",
        ["x-ESP32-mode"] = "sketch",
    })
end
EOF
}

# measure URL SCRIPT: "req/s p99_ms requests" (errors reported on stderr)
measure() {
    local out
    out=$(wrk -t1 -c"$conns" -d"${seconds}s" --latency -s "$2" "$1")
    echo "$out" >>"$tmp/wrk.log"
    if echo "$out" | grep -q 'Non-2xx or 3xx\|Socket errors'; then
        echo "$me: errors from $1:" >&2
        echo "$out" | grep 'Non-2xx or 3xx\|Socket errors' >&2
    fi
    echo "$out" | awk '
        function ms(v) {
            if (v ~ /us$/) return v * 0.001
            if (v ~ /ms$/) return v + 0
            if (v ~ /s$/) return v * 1000
            return v + 0
        }
        /^Requests\/sec:/ { rps = $2 }
        $1 == "99%" { p99 = ms($2) }
        / requests in / { n = $1 }
        END { printf "%.0f %.2f %d\n", rps, p99, n }'
}

row() { # LABEL "rps p99 n" [REFERENCE "rps p99 n"]
    local label=$1 rps p99 ratio="" verdict=""
    read -r rps p99 _ <<<"$2"
    if [ -n "${3:-}" ]; then
        ratio=$(awk -v a="$rps" -v b="${3%% *}" 'BEGIN { printf "%.2fx", a / b }')
        verdict=$(awk -v a="$rps" -v b="${3%% *}" 'BEGIN { print (a / b >= 0.5 ? "met (>= 0.5x)" : "MISSED (>= 0.5x)") }')
    fi
    printf "%-52s %9s %9s %7s  %s\n" "$label" "$rps" "$p99" "$ratio" "$verdict"
}

# run NAME DB: start aloftd on DB, measure (a), (b), (c); print their rows
run() {
    local name=$1 db=$2 data=$tmp/aloftd-$1
    mkdir -p "$data"
    "$aloftd" --data "$data" --db "$db" --listen 127.0.0.1:0 --threads "$threads" \
        --admin-token-file "$data/token" >"$data/log" 2>&1 &
    local pid=$!
    pids+=($pid)
    bench_wait_for "$data/log" "serving on" $pid "aloftd ($name)"
    local url auth
    url=$(sed -n 's|.*serving on \(http://[0-9.:]*\)/.*|\1|p' "$data/log" | head -1)
    auth="Authorization: Bearer $(cat "$data/token")"
    for v in 1.0.0 1.1.0; do
        curl -sf --noproxy '*' -o /dev/null -H "$auth" -H 'Content-Type: application/octet-stream' \
            --data-binary "@$tmp/$v.bin" "$url/api/firmware?platform=bench"
    done
    lua 1.1.0 24:0A:C4 "$macs" >"$tmp/a.lua"
    local a b c
    a=$(measure "$url/update" "$tmp/a.lua")
    curl -sf --noproxy '*' -o /dev/null -H "$auth" -H 'Content-Type: application/json' \
        --data '{"version": "1.1.0", "stages": [50, 100], "max_failures": "100%"}' \
        "$url/api/platforms/bench/rollouts"
    lua 1.0.0 30:AE:A4 0 >"$tmp/b.lua"
    b=$(measure "$url/update" "$tmp/b.lua")
    local seen=${b##* }
    lua 1.1.0 30:AE:A4 "$seen" >"$tmp/c.lua"
    c=$(measure "$url/update" "$tmp/c.lua")
    local counts
    counts=$(curl -sf --noproxy '*' -H "$auth" "$url/api/rollouts/1" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("offered %d, updated %d, failed %d" % (r["offered"], r["successes"], r["failures"]))')
    row "(a) no rollout, all current, $name" "$a"
    row "(b) 50 % rollout, first contacts, $name" "$b" "$a"
    row "(c) 50 % rollout, offered come back, $name" "$c" "$a"
    awk -v n="${c##* }" -v d="$seen" -v counts="$counts" 'BEGIN {
        printf "    (c): %d check-ins over the %d devices of (b), %.1f returns each; rollout: %s\n", n, d, n / d, counts }'
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

printf '\nbench/scale: aloftd (--threads %s) on loopback, wrk -t1 -c%s -d%ss per phase; GET /update with\n' \
    "$threads" "$conns" "$seconds"
printf 'HTTPUpdate headers, one MAC per request; (a) cycles %s MACs\n\n' "$macs"
printf "%-52s %9s %9s %7s  %s\n" "" "req/s" "p99 ms" "vs (a)" "target"
run sqlite "sqlite:$tmp/aloftd-sqlite/aloft.db"
if bench_pg_start; then
    run postgresql "$pg_url"
else
    echo "(PostgreSQL: not measured, no server could be started; see scripts/deps.sh)"
    tail -5 "$tmp/pg.log" >&2 2>/dev/null || true
fi
