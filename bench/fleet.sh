#!/usr/bin/env bash
# bench/fleet: how long `aloft deploy` takes to update 1, 16, 32 and 64
# simulated ESP32-S3s, each with the datasheet flash timing of an ESP32 and a
# 1 MB/s link (a realistic ESP32 on Wi-Fi), and what it costs aloft itself.
# Issue 4 "Benchmark": 64 nodes within 1.5x the single-node time with
# --parallel 64, and about ceil(64/8) = 8x with the default --parallel 8.
#
# The image is the real ESP-IDF build in the shared fixtures (1 MB,
# esp32-csi-node 0.6.4, for 8 MB flash); without the fixtures a synthesised
# 1,000,000-byte image stands in. The nodes run on 127.0.0.141..204, one
# address each, on port $BENCH_PORT (default 17032); each has an 8 MB flash
# file in a temporary directory that is removed at the end, and every node is
# stopped by its PID.
#
# usage: bench/fleet.sh [BUILD_DIR]    (default: build; run by bench/run.sh)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

build=${1:-build}
aloft=$build/bin/aloft
node=$build/bin/aloft-node
port=${BENCH_PORT:-17032}
first=141 # 127.0.0.141 .. 127.0.0.204
sizes="1 16 32 64"
max=64

bench_need "$aloft" "$node"

bench_tmp fleet

# the image to deploy, and the older one the nodes start with
bench_images

addr() { echo "127.0.0.$((first + $1)):$port"; }

# start the fleet
for ((i = 0; i < max; i++)); do
    "$node" --create --flash-size 8M --firmware "$tmp/base.bin" --flash "$tmp/node$i.img" --open \
        --listen "$(addr $i)" --flash-timing esp32 --link-rate 1M \
        </dev/null >"$tmp/node$i.log" 2>&1 &
    pids+=($!)
done
for ((i = 0; i < max; i++)); do
    bench_wait_for "$tmp/node$i.log" "http: serving" "${pids[$i]}" "node $(addr $i) (BENCH_PORT=$port taken?)"
done

# time one deploy: wall, aloft's CPU and peak RSS, the outcome
have_time=no
[ -x /usr/bin/time ] && /usr/bin/time -f x true >/dev/null 2>&1 && have_time=yes
run() { # run N PARALLEL -> "wall cpu rss_kb updated exit"
    local n=$1 par=$2 targets=() code=0
    for ((i = 0; i < n; i++)); do targets+=("$(addr $i)"); done
    local out=$tmp/report-$n-$par.json tf=$tmp/time-$n-$par
    if [ $have_time = yes ]; then
        /usr/bin/time -f '%e %U %S %M' -o "$tf" "$aloft" deploy "$image" "${targets[@]}" \
            --force --parallel "$par" --timeout 60 --json >"$out" || code=$?
        read -r wall user sys rss <"$tf"
    else # bash's clock and CPU times; no peak RSS
        local TIMEFORMAT='%R %U %S'
        { time "$aloft" deploy "$image" "${targets[@]}" --force --parallel "$par" --timeout 60 --json \
            >"$out" 2>/dev/null || code=$?; } 2>"$tf"
        read -r wall user sys <"$tf"
        rss=""
    fi
    local updated
    updated=$(bench_updated "$out")
    echo "$wall $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }') ${rss:-0} $updated $code"
}

printf '\nbench/fleet: aloft deploy of %s (%d bytes) to simulated ESP32-S3s\n' "$(basename "$image")" "$image_bytes"
printf '8 MB flash with ESP32 erase/program timing (--flash-timing esp32), 1 MB/s link each (--link-rate 1M),\n'
printf 'whole-slot erase, restart after 1 s; wall time until every device is verified\n\n'
printf '%6s %9s %9s %10s %13s %15s   %s\n' nodes parallel "wall s" "x single" "aloft CPU s" "aloft peak RSS" result
single=""
declare -A ratio
failed=0
for par in 64 8; do
    for n in $sizes; do
        if [ "$n" = 1 ] && [ -n "$single" ]; then
            continue # one device: --parallel makes no difference
        fi
        read -r wall cpu rss updated code < <(run "$n" "$par")
        [ -n "$single" ] || single=$wall
        r=$(awk -v w="$wall" -v s="$single" 'BEGIN { printf "%.2f", w / s }')
        ratio[$n-$par]=$r
        if [ "$updated" = "$n" ] && [ "$code" = 0 ]; then
            result="$updated updated"
        else
            result="FAILED: $updated of $n updated, exit $code (report: $tmp/report-$n-$par.json)"
            failed=1
        fi
        rss_s=$([ "$rss" != 0 ] && awk -v k="$rss" 'BEGIN { printf "%.1f MiB", k / 1024 }' || echo n/a)
        printf '%6d %9d %9.2f %9sx %13s %15s   %s\n' "$n" "$par" "$wall" "$r" "$cpu" "$rss_s" "$result"
    done
done

awk -v a="${ratio[64-64]}" -v b="${ratio[64-8]}" 'BEGIN {
    ok64 = a <= 1.5 ? "met" : "MISSED"
    ok8 = (b >= 8 * 0.8 && b <= 8 * 1.2) ? "met" : "MISSED"
    printf "\ntarget: 64 nodes with --parallel 64 <= 1.50x single: %.2fx, %s\n", a, ok64
    printf "target: 64 nodes with --parallel 8 ~ ceil(64/8) = 8x single (within 20%%): %.2fx, %s\n", b, ok8
}'
[ $failed = 0 ] || bench_fail "some deploys failed"
