#!/usr/bin/env bash
# bench/pull: pull updates at scale. One aloftd serves a ~1 MB release; 64
# simulated ESP32-S3s (each with the datasheet flash timing of an ESP32 and a
# 1 MB/s link, --flash-timing esp32 --link-rate 1M) are triggered at once
# over MQTT (`aloft trigger --platform ... --wait`) and download it from
# aloftd themselves. Measured: the wall time until every device reports
# "updated" (restarted into the new image and confirmed it), next to one
# device alone; and what it costs aloftd: its CPU time (/proc/PID/stat) and
# its peak resident set (VmHWM from /proc/PID/status, reset before each run
# through /proc/PID/clear_refs).
#
# The image is the real ESP-IDF build in the shared fixtures (1 MB,
# esp32-csi-node 0.6.4); without the fixtures a synthesised 1,000,000-byte
# image stands in. A mosquitto broker (127.0.0.1:$BENCH_MQTT_PORT, default
# 17883) and aloftd (127.0.0.1:$BENCH_HTTP_PORT, default 17080) are started
# here; the nodes run on 127.0.0.141..205, one address each, port
# $BENCH_PORT (default 17132). Everything is stopped by its PID; the
# temporary directory is removed at the end. Timings are for reference: a
# benchmark never fails on one.
#
# usage: bench/pull.sh [BUILD_DIR]    (default: build; run by bench/run.sh)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

build=${1:-build}
aloft=$build/bin/aloft
node=$build/bin/aloft-node
aloftd=$build/bin/aloftd
port=${BENCH_PORT:-17132}
mqtt_port=${BENCH_MQTT_PORT:-17883}
http_port=${BENCH_HTTP_PORT:-17080}
first=141 # 127.0.0.141 .. 127.0.0.205
max=64

bench_need "$aloft" "$node" "$aloftd"
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    echo "bench/pull.sh: mosquitto not found; run scripts/deps.sh" >&2
    exit 1
fi
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)

bench_tmp pull

# the broker and the server
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 10000\n%s' \
    "$mqtt_port" "$([ "$(id -u)" = 0 ] && echo 'user root')" >"$tmp/mosquitto.conf"
"$mosquitto" -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
pids+=($!)
bench_wait_for "$tmp/mosquitto.log" "running" "${pids[-1]}" "mosquitto on 127.0.0.1:$mqtt_port (BENCH_MQTT_PORT taken?)"
broker=127.0.0.1:$mqtt_port
mkdir -p "$tmp/aloftd"
"$aloftd" --listen "127.0.0.1:$http_port" --data "$tmp/aloftd" --admin-token-file "$tmp/aloftd/token" \
    >"$tmp/aloftd.log" 2>&1 &
aloftd_pid=$!
pids+=($aloftd_pid)
bench_wait_for "$tmp/aloftd.log" "serving on" "$aloftd_pid" "aloftd on 127.0.0.1:$http_port (BENCH_HTTP_PORT taken?)"
server=http://127.0.0.1:$http_port

# the release, and the older image the nodes start with
bench_images
version=$("$aloft" image info "$image" | awk '/^ *version/ { print $NF; exit }')
ALOFT_SERVER=$server ALOFT_TOKEN_FILE=$tmp/aloftd/token "$aloft" server upload "$image" >/dev/null
sha=$(sha256sum "$image" | cut -c1-64)
url=$server/firmware/$sha.bin

addr() { echo "127.0.0.$((first + $1)):$port"; }

# 64 nodes of platform bench-pull, and one more on its own for the single time
for ((i = 0; i <= max; i++)); do
    platform=bench-pull
    [ $i = $max ] && platform=bench-pull-one
    "$node" --create --flash-size 8M --firmware "$tmp/base.bin" --flash "$tmp/node$i.img" --open \
        --listen "$(addr $i)" --flash-timing esp32 --link-rate 1M \
        --mqtt "$broker" --platform "$platform" --device-id "pull-$i" \
        </dev/null >"$tmp/node$i.log" 2>&1 &
    pids+=($!)
done
for ((i = 0; i <= max; i++)); do
    bench_wait_for "$tmp/node$i.log" "mqtt: subscribed" "${pids[$((i + 2))]}" "node $(addr $i) (BENCH_PORT=$port taken?)"
done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$aloftd_pid/stat"; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$aloftd_pid/status"; }
ticks=$(getconf CLK_TCK)

run() { # PLATFORM N -> "wall cpu rss_kb updated exit"
    local platform=$1 n=$2 code=0 out=$tmp/report-$1.json
    echo 5 >"/proc/$aloftd_pid/clear_refs" 2>/dev/null || true # reset VmHWM to the current RSS
    local c0 t0 t1
    c0=$(cpu_ticks)
    t0=$(date +%s.%N)
    "$aloft" trigger --broker "$broker" --platform "$platform" --url "$url" --version "$version" \
        --sha256 "$sha" --size "$image_bytes" --expect "$n" --wait --timeout 600 --json >"$out" || code=$?
    t1=$(date +%s.%N)
    local updated
    updated=$(bench_updated "$out")
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" \
        "$(awk -v c="$(($(cpu_ticks) - c0))" -v t="$ticks" 'BEGIN { printf "%.2f", c / t }')" \
        "$(hwm_kb)" "$updated" "$code"
}

printf '\nbench/pull: %d devices pull %s (%d bytes) from one aloftd, triggered at once over MQTT\n' \
    "$max" "$(basename "$image")" "$image_bytes"
printf 'simulated ESP32-S3s: 8 MB flash with ESP32 erase/program timing, 1 MB/s link each; wall time from\n'
printf '`aloft trigger --wait` until every device reports "updated" (restarted and confirmed)\n\n'
printf '%6s %9s %10s %14s %17s   %s\n' nodes "wall s" "x single" "aloftd CPU s" "aloftd peak RSS" result
single=""
failed=0
for spec in bench-pull-one:1 bench-pull:$max; do
    platform=${spec%:*}
    n=${spec#*:}
    read -r wall cpu rss updated code < <(run "$platform" "$n")
    [ -n "$single" ] || single=$wall
    r=$(awk -v w="$wall" -v s="$single" 'BEGIN { printf "%.2f", w / s }')
    if [ "$updated" = "$n" ] && [ "$code" = 0 ]; then
        result="$updated updated"
    else
        result="FAILED: $updated of $n updated, exit $code (report: $tmp/report-$platform.json)"
        failed=1
    fi
    printf '%6d %9.2f %9sx %14s %13.1f MiB   %s\n' "$n" "$wall" "$r" "$cpu" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" \
        "$result"
done
[ $failed = 0 ] || bench_fail "some devices did not update"
