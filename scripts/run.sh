#!/usr/bin/env bash
# make run: start an MQTT broker (mosquitto) on 127.0.0.1:1883, the update
# server (aloftd, embedded SQLite) on 127.0.0.1:8080 with the demo release
# 1.0.0, and three simulated devices on 127.0.0.2-4:8032 running it, connected
# to both (MQTT triggers, a check every minute); print how to update them;
# Ctrl-C stops everything (by PID) and ends quietly (exit status 0). Every
# run starts the demo afresh: aloftd's releases and the devices' flash files
# of a previous run are removed (its admin token and the devices' PSK stay),
# so that what the banner tells is true. Every process must come up and serve:
# when one does not, its reason (from its log) is printed, the others are
# stopped and the exit status is 1.
# The Makefile builds the programs, the update page (BUILD/www.bin) and the
# admin UI first. Where things listen can be changed (the tests do):
#   ALOFT_RUN_BROKER=HOST:PORT ALOFT_RUN_SERVER=HOST:PORT
#   ALOFT_RUN_DEVICES="HOST:PORT ..." ALOFT_RUN_DIR=DIR ALOFT_RUN_WWW=www.bin
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(cd "${BUILD:-build}" && pwd)
bin=$BUILD/bin
run=${ALOFT_RUN_DIR:-$BUILD/run}
www=${ALOFT_RUN_WWW:-$BUILD/www.bin}
broker=${ALOFT_RUN_BROKER:-127.0.0.1:1883}
server=${ALOFT_RUN_SERVER:-127.0.0.1:8080}
read -r -a devices <<<"${ALOFT_RUN_DEVICES:-127.0.0.2:8032 127.0.0.3:8032 127.0.0.4:8032}"

[ -f "$www" ] || { echo "make run: $www is missing (make www builds it)" >&2; exit 2; }
mkdir -p "$run"
"$bin/aloft" image make --chip esp32s3 --project aloft-demo --version 1.0.0 -o "$run/demo-1.0.0.bin" >/dev/null
"$bin/aloft" image make --chip esp32s3 --project aloft-demo --version 1.1.0 -o "$run/demo-1.1.0.bin" >/dev/null
"$bin/aloft" image make --chip esp32s3 --project aloft-demo --version 1.2.0 --sim panic-on-boot \
    -o "$run/demo-1.2.0-panics.bin" >/dev/null

pids=()
stop() {
    trap - INT TERM EXIT
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    echo "stopped aloftd, the broker and the devices"
}
trap stop EXIT
trap 'echo; exit 0' INT # Ctrl-C is how a demo ends: not an error
trap 'exit 0' TERM

# A started process must be alive and have logged its "serving" line
# within 10 s; otherwise say why, from its log, and stop (the trap stops
# the others).
names=()
logs=()
started() { # NAME LOG: the process just started in the background
    pids+=($!)
    names+=("$1")
    logs+=("$2")
}
up() { # INDEX NEEDLE
    local i=$1 needle=$2
    for _ in $(seq 100); do
        kill -0 "${pids[$i]}" 2>/dev/null || break
        grep -q "$needle" "${logs[$i]}" 2>/dev/null && return 0
        sleep 0.1
    done
    if kill -0 "${pids[$i]}" 2>/dev/null; then
        echo "make run: ${names[$i]} is not serving after 10 s; the end of ${logs[$i]}:" >&2
    else
        wait "${pids[$i]}" && status=0 || status=$?
        echo "make run: ${names[$i]} exited (status $status); the end of ${logs[$i]}:" >&2
    fi
    tail -n 5 "${logs[$i]}" 2>/dev/null | sed 's/^/    /' >&2
    exit 1
}

# the broker: a config of our own (as root mosquitto would drop to the user mosquitto)
printf 'listener %s %s\nallow_anonymous true\npersistence false\n%s' "${broker##*:}" "${broker%:*}" \
    "$([ "$(id -u)" = 0 ] && echo 'user root')" >"$run/mosquitto.conf"
mosquitto -c "$run/mosquitto.conf" >"$run/mosquitto.log" 2>&1 &
started "the MQTT broker (mosquitto) on $broker" "$run/mosquitto.log"
up 0 "running"
# the demo's server holds what this run uploads, nothing older (the token stays)
rm -rf "$run/aloftd/firmware" "$run/aloftd/tmp" "$run/aloftd"/aloft.db*
mkdir -p "$run/aloftd"
"$bin/aloftd" --listen "$server" --data "$run/aloftd" --admin-token-file "$run/aloftd/token" \
    --mqtt "$broker" >"$run/aloftd.log" 2>&1 &
started "the update server (aloftd) on $server" "$run/aloftd.log"
up 1 "serving on"
export ALOFT_SERVER=http://$server ALOFT_TOKEN_FILE=$run/aloftd/token
# only 1.0.0: the devices check at boot and would take a newer release at once
"$bin/aloft" server upload "$run/demo-1.0.0.bin" >/dev/null
"$bin/aloft" server upload "$www" --frontend --platform aloft-demo >/dev/null

# The devices refuse every change without a PSK: one for all of them,
# kept across runs, printed below and used by the commands there.
[ -s "$run/psk" ] || od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$run/psk"
psk=$(cat "$run/psk")
for i in "${!devices[@]}"; do
    rm -f "$run/node$i.img" "$run/node$i.log"
    # the factory's provisioning: a MAC, and the credential aloftd derived
    # for it, with which the device signs its outcome reports
    mac=$(printf '24:0A:C4:AD:00:%02X' "$((i + 1))")
    "$bin/aloft-node" --create --flash-size 4M --firmware "$run/demo-1.0.0.bin" --www "$www" \
        --flash "$run/node$i.img" --listen "${devices[$i]}" --log "$run/node$i.log" --psk "$psk" \
        --mac "$mac" --server-key "$("$bin/aloft" server credential "$mac")" \
        --mqtt "$broker" --server "http://$server" --check-every 60 >/dev/null 2>&1 &
    started "the device on ${devices[$i]}" "$run/node$i.log"
done
for i in "${!devices[@]}"; do up $((i + 2)) "http: serving"; done
for i in "${!pids[@]}"; do up "$i" ""; done # all still alive
sha=$(sha256sum "$run/demo-1.1.0.bin" | cut -c1-64)

cat <<MSG

aloft is running ${#devices[@]} simulated ESP32-S3 devices with demo firmware 1.0.0:

 $(printf '   http://%s/' "${devices[@]}")

Their PSK (the update page asks for it; every change needs it): $psk

the update server, aloftd, at http://$server/ holding release 1.0.0 only (every make run
starts the demo afresh; admin token in $run/aloftd/token), and an MQTT broker at $broker. The devices take triggers from
it, publish their state on aloft/aloft-demo/<MAC>/state, and ask aloftd for updates every minute.
See the fleet in aloftd's admin UI: http://$server/admin/ (sign in with the token above).

Update all three over MQTT and watch each one's outcome (from another terminal):

  export ALOFT_SERVER=http://$server ALOFT_TOKEN_FILE=$run/aloftd/token
  $bin/aloft server upload $run/demo-1.1.0.bin
  $bin/aloft trigger --broker $broker --platform aloft-demo \\
      --url http://$server/firmware/$sha.bin --version 1.1.0 --sha256 $sha --wait

(once 1.1.0 is on aloftd, devices that were not triggered take it at their next check).
Or push, or look:

  export ALOFT_PSK=$psk
  $bin/aloft status ${devices[*]}
  $bin/aloft deploy $run/demo-1.1.0.bin ${devices[*]} --canary 1
  $bin/aloft deploy $run/demo-1.2.0-panics.bin ${devices[0]}    (it panics: rolled back)
  curl --data-binary @$run/demo-1.1.0.bin -H 'Content-Type: application/octet-stream' \
      -H "Authorization: Bearer $psk" http://${devices[-1]}/ota
  ALOFT_TOKEN_FILE=$run/aloftd/token $bin/aloft server devices

Logs: $run/node*.log, $run/aloftd.log, $run/mosquitto.log      Ctrl-C stops everything.
MSG
wait
