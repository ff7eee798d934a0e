#!/usr/bin/env bash
# bench/rollout: a staged rollout through a simulated fleet (issue 15,
# "Benchmark", the second table). `aloft fleet simulate` runs
# $BENCH_DEVICES devices (default 100,000) on 1.0.0, each polling GET
# /update every $BENCH_INTERVAL s (default 60, with jitter: 1,667
# check-ins/s at 100,000), through a rollout of 1.1.0 in stages 1, 10, 50,
# 100 % that advances by itself once 0.5 % of the fleet updated in a stage
# (500 devices of 100,000: half the first stage's 1 %), max failures 5 %.
# A device offered 1.1.0 takes it without downloading it (--no-download:
# the server's check-in path is measured, not the copy of 100,000 bodies
# over loopback), reports "updated" signed with its credential, and polls
# on 1.1.0 from then on.
#   SQLite:     one aloftd, all the devices;
#   PostgreSQL: two aloftd with separate data directories on one database,
#               half the devices each (two simulators, two MAC prefixes).
# Per run: the time from the first poll until every device runs 1.1.0, the
# check-ins and their p99 latency (the simulators' own measure), aloftd's
# CPU seconds and peak RSS (summed over instances; the PostgreSQL server's
# CPU on a line of its own), and the database's size at the end. Every process is started here and stopped by its PID; the
# temporary directory is removed at the end. A run stops after
# $BENCH_LIMIT s (default 900) whatever happened.
#
# usage: bench/rollout.sh [BUILD_DIR]    (default: build; run by bench/run.sh)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

build=${1:-build}
aloft=$build/bin/aloft
aloftd=$build/bin/aloftd
devices=${BENCH_DEVICES:-100000}
interval=${BENCH_INTERVAL:-60}
limit=${BENCH_LIMIT:-900}
advance=$((devices / 200))
[ "$advance" -ge 1 ] || advance=1

bench_need "$aloft" "$aloftd"
for tool in curl python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "$me: $tool not found; run scripts/deps.sh" >&2
        exit 1
    fi
done
bench_tmp rollout
"$aloft" image make --chip esp32s3 --project bench --version 1.0.0 --size 65872 -o "$tmp/1.0.0.bin" >/dev/null
"$aloft" image make --chip esp32s3 --project bench --version 1.1.0 --size 65872 -o "$tmp/1.1.0.bin" >/dev/null
ticks=$(getconf CLK_TCK)
pg_pid="" # the PostgreSQL server's postmaster, once there is one

# start NAME DB: an aloftd on DB; appends its PID to apids and URL to urls
apids=()
urls=()
start() {
    local data=$tmp/aloftd-$1
    mkdir -p "$data"
    cp "$tmp/token" "$data/token"
    "$aloftd" --data "$data" --db "$2" --listen 127.0.0.1:0 --admin-token-file "$data/token" \
        --max-per-address 1024 >"$data/log" 2>&1 &
    local pid=$!
    pids+=($pid)
    apids+=($pid)
    bench_wait_for "$data/log" "serving on" $pid "aloftd ($1)"
    urls+=("$(sed -n 's|.*serving on \(http://[0-9.:]*\)/.*|\1|p' "$data/log" | head -1)")
}

cpu_s() { # PID: user + system seconds so far
    awk -v t="$ticks" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$1/stat"
}
rss_mb() { # PID: peak resident set, MB
    awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"
}

# run NAME DB INSTANCES SIZE_COMMAND: one row of the table
run() {
    local name=$1 db=$2 n=$3
    apids=()
    urls=()
    local i
    for ((i = 0; i < n; i++)); do start "$name-$i" "$db"; done
    local auth="Authorization: Bearer $(cat "$tmp/token")" url=${urls[0]}
    for v in 1.0.0 1.1.0; do
        curl -sf --noproxy '*' -o /dev/null -H "$auth" -H 'Content-Type: application/octet-stream' \
            --data-binary "@$tmp/$v.bin" "$url/api/firmware?platform=bench"
    done
    curl -sf --noproxy '*' -o /dev/null -H "$auth" -H 'Content-Type: application/json' \
        --data "{\"version\": \"1.1.0\", \"stages\": [1, 10, 50, 100], \"max_failures\": \"5%\", \"auto_advance\": $advance}" \
        "$url/api/platforms/bench/rollouts"
    local sims=() start_s=$SECONDS per=$((devices / n))
    for ((i = 0; i < n; i++)); do
        ALOFT_TOKEN=$(cat "$tmp/token") "$aloft" fleet simulate --devices "$per" --server "${urls[$i]}" \
            --platform bench --version 1.0.0 --interval "$interval" --jitter --no-download \
            --until-version 1.1.0 --duration "$limit" --concurrency 128 --mac-prefix "02:B$i:0F" \
            >"$tmp/sim-$name-$i.json" 2>"$tmp/sim-$name-$i.log" &
        sims+=($!)
        pids+=($!)
    done
    for pid in "${sims[@]}"; do wait "$pid" || true; done
    local took=$((SECONDS - start_s)) cpu=0 rss=0
    for pid in "${apids[@]}"; do
        cpu=$(awk -v a="$cpu" -v b="$(cpu_s "$pid")" 'BEGIN { print a + b }')
        rss=$((rss + $(rss_mb "$pid")))
    done
    local status
    status=$(curl -sf --noproxy '*' -H "$auth" "$url/api/rollouts/1" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("%s at stage %d of %d, %d offered, %d updated, %d failed" % (r["status"], r["stage"] + 1, len(r["stages"]),
      r["offered"], r["successes"], r["failures"]))')
    local size
    size=$($4)
    python3 - "$name ($n instance$([ "$n" -gt 1 ] && echo s))" "$took" "$cpu" "$rss" "$size" "$tmp"/sim-"$name"-*.json <<'EOF'
import json, sys
label, took, cpu, rss, size = sys.argv[1:6]
reps = [json.load(open(p)) for p in sys.argv[6:]]
checkins = sum(r["checkins"]["answered"] for r in reps)
failed = sum(r["checkins"]["failed"] + r["checkins"]["other_status"] for r in reps)
p99 = max(r["latency_ms"]["p99"] for r in reps)
on = sum(r["versions"].get("1.1.0", 0) for r in reps)
devs = sum(r["devices"] for r in reps)
print("%-28s %8s %9d %8.1f %9.1f %8s %9s   %d/%d on 1.1.0, %d failed" % (
    label, took + " s", checkins, p99, float(cpu), rss + " MB", size, on, devs, failed))
EOF
    echo "    rollout: $status"
    for pid in "${apids[@]}"; do
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$pg_pid" ]; then # its backends ended with aloftd's connections: their CPU is the server's now
        sleep 1
        awk -v t="$ticks" '{ printf "    PostgreSQL server: %.1f CPU s (its processes, all of the run)\n", ($14 + $15 + $16 + $17) / t }' \
            "/proc/$pg_pid/stat"
    fi
}

sqlite_size() { du -cb "$tmp"/aloftd-sqlite-0/aloft.db* | awk 'END { printf "%.1f MB", $1 / 1e6 }'; }
pg_size() {
    psql -At "$pg_url" -c "SELECT pg_database_size(current_database())" | awk '{ printf "%.1f MB", $1 / 1e6 }'
}

python3 -c 'import secrets; print("bench-" + secrets.token_hex(16))' >"$tmp/token"
printf '\nbench/rollout: %d simulated devices polling every %s s (jitter), 1.0.0 -> 1.1.0 in stages\n' \
    "$devices" "$interval"
printf '1, 10, 50, 100 %%, auto-advance at %d updated per stage, no downloads; aloftd on loopback\n' "$advance"
printf '(%d CPUs, shared with the simulators and the database)\n\n' "$(nproc)"
printf "%-28s %8s %9s %8s %9s %8s %9s\n" "" "complete" "check-ins" "p99 ms" "CPU s" "peak RSS" "database"
run sqlite "sqlite:$tmp/aloftd-sqlite-0/aloft.db" 1 sqlite_size
if bench_pg_start; then
    pg_pid=$(head -1 "$tmp/pg/data/postmaster.pid") # the postmaster (runuser's child as root)
    run postgresql "$pg_url" 2 pg_size
else
    echo "(PostgreSQL: not measured, no server could be started; see scripts/deps.sh)"
    tail -5 "$tmp/pg.log" >&2 2>/dev/null || true
fi
