#!/usr/bin/env bash
# bench/espota: the same ~1 MB image pushed to the same simulated ESP32-S3
# (ESP32 flash timing, a 1 MB/s link: --flash-timing esp32 --link-rate 1M)
# over HTTP (`aloft deploy`) and over ArduinoOTA (`aloft deploy --espota`),
# and, with python3, as espota.py sends it: 1024-byte chunks, each waiting
# for the device's answer (tests/e2e/espota_client.py). Measured: the
# upload's seconds (invitation or request to the device's OK) and, for the
# deploys, the wall time until the device is verified after its restart.
# Each way runs 3 times, alternating; the table shows the median.
#
# The image is the real ESP-IDF build in the shared fixtures (1 MB), else a
# synthesised 1,000,000-byte one. The node runs on 127.0.0.140, HTTP on
# $BENCH_PORT (default 17232), ArduinoOTA on UDP $BENCH_ESPOTA_PORT (default
# 17332); it is stopped by its PID and the temporary directory removed.
# Timings are for reference: a benchmark never fails on one.
#
# usage: bench/espota.sh [BUILD_DIR]    (default: build; run by bench/run.sh)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

build=${1:-build}
aloft=$build/bin/aloft
node=$build/bin/aloft-node
port=${BENCH_PORT:-17232}
udp=${BENCH_ESPOTA_PORT:-17332}
ip=127.0.0.140
psk=bench-espota-psk
client=$(dirname "$0")/../tests/e2e/espota_client.py

bench_need "$aloft" "$node"
bench_tmp espota
bench_images

"$node" --create --flash-size 8M --firmware "$tmp/base.bin" --flash "$tmp/node.img" --psk "$psk" \
    --listen "$ip:$port" --espota "$ip:$udp" --flash-timing esp32 --link-rate 1M \
    </dev/null >"$tmp/node.log" 2>&1 &
pids+=($!)
bench_wait_for "$tmp/node.log" "espota: listening" "${pids[0]}" "node $ip:$port (BENCH_PORT or BENCH_ESPOTA_PORT taken?)"

json_num() { # FILE KEY: the first number KEY has in the JSON report
    tr -d ' \t\n' <"$1" | grep -o "\"$2\":[0-9.]*" | head -1 | cut -d: -f2
}

run() { # http|espota|espota.py -> "upload_s wall_s ok"
    local how=$1 out=$tmp/report.json code=0 t0 t1
    t0=$(date +%s.%N)
    case $how in
    http) "$aloft" deploy "$image" "$ip:$port" --psk "$psk" --force --timeout 60 --json >"$out" || code=$? ;;
    espota) "$aloft" deploy --espota "$image" "$ip:$udp" --status-port "$port" --psk "$psk" --force \
        --timeout 60 --json >"$out" || code=$? ;;
    espota.py)
        python3 "$client" -i "$ip" -p "$udp" -a "$psk" -f "$image" >"$tmp/python.log" 2>&1 || code=$?
        t1=$(date +%s.%N)
        # the device restarts into the image: wait for it before the next run
        local boots
        boots=$(grep -c "http: serving" "$tmp/node.log")
        until [ "$(grep -c "http: serving" "$tmp/node.log")" -gt "$boots" ] || [ $code != 0 ]; do sleep 0.05; done
        awk -v a="$t0" -v b="$t1" -v c="$code" 'BEGIN { printf "%.2f - %s\n", b - a, c == 0 ? "ok" : "FAILED" }'
        return
        ;;
    esac
    t1=$(date +%s.%N)
    local ok=FAILED
    [ $code = 0 ] && [ "$(bench_updated "$out")" = 1 ] && ok=ok
    awk -v u="$(json_num "$out" upload_seconds)" -v a="$t0" -v b="$t1" -v ok="$ok" \
        'BEGIN { printf "%.2f %.2f %s\n", u, b - a, ok }'
}

ways="http espota"
command -v python3 >/dev/null && ways="$ways espota.py"
declare -A up wall res
for round in 1 2 3; do
    for how in $ways; do
        read -r u w ok < <(run "$how")
        up[$how]+="$u "
        wall[$how]+="$w "
        [ "$ok" = ok ] || res[$how]="FAILED (logs: $tmp)"
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '\nbench/espota: %s (%d bytes) to one simulated ESP32-S3 (ESP32 flash timing, 1 MB/s link),\n' \
    "$(basename "$image")" "$image_bytes"
printf 'median of 3; upload: from the request or invitation to the device'"'"'s OK (whole-slot erase included);\n'
printf 'deploy: until the device is verified after its restart\n\n'
printf '%-34s %9s %9s %10s   %s\n' way "upload s" "deploy s" "x HTTP" result
http_up=$(echo "${up[http]}" | median)
for how in $ways; do
    u=$(echo "${up[$how]}" | median)
    w=$(echo "${wall[$how]}" | median)
    case $how in
    http) name="HTTP POST /ota (aloft deploy)" ;;
    espota) name="ArduinoOTA (aloft deploy --espota)" ;;
    espota.py) name="ArduinoOTA, lockstep as espota.py" ;;
    esac
    printf '%-34s %9s %9s %9sx   %s\n' "$name" "$u" "$w" "$(awk -v a="$u" -v b="$http_up" 'BEGIN { printf "%.2f", a / b }')" \
        "${res[$how]:-ok}"
done
for how in $ways; do
    [ -z "${res[$how]:-}" ] || bench_fail "a $how upload failed"
done
