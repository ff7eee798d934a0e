#!/usr/bin/env bash
# bench/flood: aloftd's latency for devices while one address floods it
# (issue 14). Devices on their own loopback addresses (127.0.11.x) ask
# GET /update with HTTPUpdate's headers (the 304 path), one request at a
# time for $BENCH_SECONDS seconds (default 20), measured by bench_flood:
#   quiet:  nothing else;
#   flood:  127.0.10.5 holds 5,000 idle sockets and 1,000 that trickle a
#           header byte every 5 s, opening again each one aloftd closes,
#           against aloftd's defaults (256 per address, 10 s head deadline);
#   held:   the same flood with --max-per-address 10000, so aloftd holds
#           all 6,000 until the head deadline closes them.
# Prints answered and refused requests, p50, p99 and max latency, and each
# flood's p99 next to the quiet one. Target: p99 under flood <= 10x quiet,
# no device request refused. A fresh aloftd (SQLite) serves each run.
#
# usage: bench/flood.sh [BUILD_DIR]    (default: build; run by bench/run.sh)
set -euo pipefail
build=${1:-build}
aloft=$build/bin/aloft
aloftd=$build/bin/aloftd
client=$build/bench/bench_flood
seconds=${BENCH_SECONDS:-20}
. "$(dirname "$0")/lib.sh"
bench_need "$aloft" "$aloftd" "$client"
bench_tmp flood
"$aloft" image make --chip esp32s3 --project bench --version 1.0.0 -o "$tmp/fw.bin" >/dev/null

# run NAME CLIENT-ARGS -- ALOFTD-ARGS: one aloftd, one measurement into $tmp/NAME.out
run() {
    local name=$1 args=() extra=()
    shift
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    shift
    extra=("$@")
    mkdir -p "$tmp/$name"
    "$aloftd" --listen 127.0.10.1:0 --data "$tmp/$name" --admin-token-file "$tmp/$name/token" \
        "${extra[@]}" >"$tmp/$name.log" 2>&1 &
    pids+=($!)
    bench_wait_for "$tmp/$name.log" "serving on" "${pids[-1]}" aloftd
    local port
    port=$(sed -n 's|.*serving on http://127.0.10.1:\([0-9]*\)/.*|\1|p' "$tmp/$name.log")
    ALOFT_SERVER=http://127.0.10.1:$port ALOFT_TOKEN_FILE=$tmp/$name/token \
        "$aloft" server upload "$tmp/fw.bin" --platform bench >/dev/null
    "$client" --server "127.0.10.1:$port" --seconds "$seconds" "${args[@]}" >"$tmp/$name.out" ||
        bench_fail "bench_flood failed ($name)"
    kill "${pids[-1]}"
    wait "${pids[-1]}" 2>/dev/null || true
}

run quiet --
run flood --idle 5000 --trickle 1000 --from 127.0.10.5 --
run held --idle 5000 --trickle 1000 --from 127.0.10.5 -- --max-per-address 10000

field() { # FILE NAME: a number of bench_flood's line
    awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$1"
}
log_sum() { # LOG TEXT: the sum of the numbers before TEXT on aloftd's connection lines
    grep 'connections: ' "$1" | grep -o "[0-9]* $2" | awk '{ s += $1 } END { print s + 0 }'
}

quiet_p99=$(field "$tmp/quiet.out" p99_us)
printf '\nbench/flood: GET /update (HTTPUpdate, 304) from devices on their own addresses, one at a\n'
printf 'time for %s s, while one address floods aloftd (5,000 idle + 1,000 trickling sockets)\n\n' "$seconds"
printf '%-40s %9s %8s %8s %8s %9s %12s\n' run answered refused "p50 ms" "p99 ms" "max ms" "p99 / quiet"
verdict=met
for name in quiet flood held; do
    f=$tmp/$name.out
    p99=$(field "$f" p99_us)
    refused=$(field "$f" refused)
    ratio=$(awk -v a="$p99" -v b="$quiet_p99" 'BEGIN { printf "%.2fx", a / b }')
    case $name in
    quiet) label="quiet" ;;
    flood) label="flood, defaults (256 per address)" ;;
    held) label="flood, all held (10000 per address)" ;;
    esac
    printf '%-40s %9s %8s %8.2f %8.2f %9.2f %12s\n' "$label" "$(field "$f" answered)" "$refused" \
        "$(awk -v v="$(field "$f" p50_us)" 'BEGIN { print v / 1000 }')" \
        "$(awk -v v="$p99" 'BEGIN { print v / 1000 }')" \
        "$(awk -v v="$(field "$f" max_us)" 'BEGIN { print v / 1000 }')" "$ratio"
    if [ "$name" != quiet ]; then
        awk -v a="$p99" -v b="$quiet_p99" 'BEGIN { exit !(a <= 10 * b) }' && [ "$refused" = 0 ] || verdict=MISSED
    fi
done
for name in flood held; do
    printf '%s: the flood opened %s sockets; aloftd refused %s at its limits, closed %s at the head deadline\n' \
        "$name" "$(field "$tmp/$name.out" flood_opened)" \
        "$(($(log_sum "$tmp/$name.log" "over the total") + $(log_sum "$tmp/$name.log" "over the per-address")))" \
        "$(log_sum "$tmp/$name.log" "whose request head")"
done
printf 'target: p99 under flood <= 10x quiet, no device request refused: %s\n' "$verdict"
