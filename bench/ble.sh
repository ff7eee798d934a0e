#!/usr/bin/env bash
# bench/ble: a 1 MB image over the simulated BLE link (aloft-node --ble, at
# the default timing: a 30 ms connection interval, 4 packets per event) at
# ATT MTU 23, 185, 247 and 517, next to the link's floor: packets per event
# × payload (MTU − 3) / interval, the most any protocol could move.
#   extended  aloft's extended mode: packets by write without response, each
#             with its 2-byte offset, a CRC-32 per 4 KB sector, a window of
#             sectors ahead of the ACKs (the whole 1 MB)
#   legacy    the esp32-ble-ota protocol: MTU − 3 packets by write with response,
#             one per connection interval at best; its rate is steady, so
#             a sample of BENCH_BLE_LEGACY_BYTES (default 65536) stands for it
# Rates are of the data phase (the device's go-ahead to the last answer).
# The nodes run --open (no PSK): the extended mode's CHALLENGE/AUTH happens
# before the go-ahead, so it would not change the rates.
# One node per MTU, run side by side on 127.0.0.141 (they mostly sleep on
# the link's clock); stopped by PID, the temporary directory removed.
# Timings are for reference: a benchmark never fails on one; the table
# marks the extended mode's share of the floor against the 85 % target.
#
# usage: bench/ble.sh [BUILD_DIR]    (default: build; run by bench/run.sh)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

build=${1:-build}
aloft=$build/bin/aloft
node=$build/bin/aloft-node
drive=$build/bench/bench_ble
ip=127.0.0.141
sample=${BENCH_BLE_LEGACY_BYTES:-65536}
mtus=${BENCH_BLE_MTUS:-23 185 247 517} # a quick look: BENCH_BLE_MTUS=517

bench_need "$aloft" "$node" "$drive"
bench_tmp ble
bench_images

i=0
for mtu in $mtus; do
    port=$(bench_free_port)
    "$node" --create --flash-size 8M --firmware "$tmp/base.bin" --flash "$tmp/node$mtu.img" --open \
        --listen "$ip:$(bench_free_port)" --ble "$ip:$port" --ble-mtu 517 \
        </dev/null >"$tmp/node$mtu.log" 2>&1 &
    pids+=($!)
    bench_wait_for "$tmp/node$mtu.log" "ble: advertising" "${pids[$i]}" "node $ip:$port"
    echo "$port" >"$tmp/port$mtu"
    i=$((i + 1))
done

run() { # MTU: extended over the whole image, then esp32-ble-ota's sample, into $tmp/MTU.{extended,legacy}
    local mtu=$1 port boots
    port=$(cat "$tmp/port$mtu")
    boots=$(grep -c "http: serving" "$tmp/node$mtu.log")
    "$drive" "$ip:$port" "$mtu" "$image" extended >"$tmp/$mtu.extended" 2>>"$tmp/$mtu.err" || true
    # it restarts into the image: esp32-ble-ota's sample goes to the new one
    until [ "$(grep -c "http: serving" "$tmp/node$mtu.log")" -gt "$boots" ]; do sleep 0.1; done
    sleep 1
    "$drive" "$ip:$port" "$mtu" "$image" legacy "$sample" >"$tmp/$mtu.legacy" 2>>"$tmp/$mtu.err" || true
}

jobs=()
for mtu in $mtus; do
    run "$mtu" &
    jobs+=($!)
done
for j in "${jobs[@]}"; do wait "$j"; done

printf '\nbench/ble: %s (%d bytes) over the simulated BLE link: 30 ms interval, 4 packets per event\n' \
    "$(basename "$image")" "$image_bytes"
printf 'floor = 4 x (MTU - 3) / 30 ms; legacy (esp32-ble-ota) measured on %d bytes, its 1 MB time extrapolated\n\n' "$sample"
printf '%5s %8s | %10s %8s | %10s %8s %7s | %10s %8s %7s\n' MTU payload "floor B/s" "1 MB s" \
    "ext B/s" "1 MB s" "floor" "legacy B/s" "1 MB s" "floor"
failed=""
for mtu in $mtus; do
    read -r eb es er payload eok <"$tmp/$mtu.extended" || eok=FAILED
    read -r sb ss sr _ sok <"$tmp/$mtu.legacy" || sok=FAILED
    [ "$eok" = ok ] && [ "$sok" = ok ] || failed="$failed $mtu"
    awk -v m="$mtu" -v p="${payload:-$((mtu - 3))}" -v er="${er:-0}" -v sr="${sr:-0}" -v n="$image_bytes" 'BEGIN {
        floor = 4 * p / 0.030
        printf "%5d %8d | %10.0f %8.1f | %10.0f %8.1f %6.1f%%%s | %10.0f %8.1f %6.1f%%\n", m, p, floor, n / floor,
            er, er ? n / er : 0, 100 * er / floor, (er >= 0.85 * floor ? " " : "!"), sr, sr ? n / sr : 0, 100 * sr / floor
    }'
done
printf '(! : the extended mode below 85 %% of the floor)\n'
[ -z "$failed" ] || bench_fail "a push failed at MTU$failed (see $tmp/*.err)"
