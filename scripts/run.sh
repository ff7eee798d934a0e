#!/usr/bin/env bash
# make run: build everything (the update page included), start an MQTT broker
# (mosquitto) on 127.0.0.1:1883, the update server (aloftd, embedded SQLite) on
# 127.0.0.1:8080 with the demo release 1.0.0, and three simulated devices on
# 127.0.0.2-4:8032 running it, connected to both (MQTT triggers, a check every
# minute); print how to update them; Ctrl-C stops everything (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(cd "${BUILD:-build}" && pwd) # absolute: build.sh runs from web/device
bin=$BUILD/bin
run=$BUILD/run

web/device/build.sh "$bin/aloft" "$BUILD/www.bin"
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
trap stop INT TERM EXIT

# the broker: a config of our own (as root mosquitto would drop to the user mosquitto)
printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n%s' \
    "$([ "$(id -u)" = 0 ] && echo 'user root')" >"$run/mosquitto.conf"
mosquitto -c "$run/mosquitto.conf" >"$run/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q "running" "$run/mosquitto.log" 2>/dev/null && break; sleep 0.1; done
if ! kill -0 "${pids[-1]}" 2>/dev/null; then
    echo "make run: mosquitto could not start on 127.0.0.1:1883 (another broker there?):" >&2
    tail -3 "$run/mosquitto.log" >&2
    exit 1
fi
mkdir -p "$run/aloftd"
"$bin/aloftd" --listen 127.0.0.1:8080 --data "$run/aloftd" --admin-token-file "$run/aloftd/token" \
    --mqtt 127.0.0.1:1883 >"$run/aloftd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q "serving on" "$run/aloftd.log" 2>/dev/null && break; sleep 0.1; done
export ALOFT_SERVER=http://127.0.0.1:8080 ALOFT_TOKEN_FILE=$run/aloftd/token
# only 1.0.0: the devices check at boot and would take a newer release at once
"$bin/aloft" server upload "$run/demo-1.0.0.bin" >/dev/null
"$bin/aloft" server upload "$BUILD/www.bin" --frontend --platform aloft-demo >/dev/null

# The devices refuse every change without a PSK: one for the three, kept
# across runs, printed below and used by the commands there.
[ -s "$run/psk" ] || od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$run/psk"
psk=$(cat "$run/psk")
for i in 2 3 4; do
    rm -f "$run/node$i.img"
    "$bin/aloft-node" --create --flash-size 4M --firmware "$run/demo-1.0.0.bin" --www "$BUILD/www.bin" \
        --flash "$run/node$i.img" --listen "127.0.0.$i:8032" --log "$run/node$i.log" --psk "$psk" \
        --mqtt 127.0.0.1:1883 --server http://127.0.0.1:8080 --check-every 60 >/dev/null 2>&1 &
    pids+=($!)
done
for i in 2 3 4; do # each node logs "http: serving" once it is up
    for _ in $(seq 50); do grep -q "http: serving" "$run/node$i.log" 2>/dev/null && break; sleep 0.1; done
done
sha=$(sha256sum "$run/demo-1.1.0.bin" | cut -c1-64)

cat <<MSG

aloft is running three simulated ESP32-S3 devices with demo firmware 1.0.0:

  http://127.0.0.2:8032/    http://127.0.0.3:8032/    http://127.0.0.4:8032/

Their PSK (the update page asks for it; every change needs it): $psk

the update server, aloftd, at http://127.0.0.1:8080/ holding release 1.0.0 (admin token in
$run/aloftd/token), and an MQTT broker at 127.0.0.1:1883. The devices take triggers from
it, publish their state on aloft/aloft-demo/<MAC>/state, and ask aloftd for updates every minute.
See the fleet in aloftd's admin UI: http://127.0.0.1:8080/admin/ (sign in with the token above).

Update all three over MQTT and watch each one's outcome (from another terminal):

  export ALOFT_SERVER=http://127.0.0.1:8080 ALOFT_TOKEN_FILE=$run/aloftd/token
  $bin/aloft server upload $run/demo-1.1.0.bin
  $bin/aloft trigger --broker 127.0.0.1:1883 --platform aloft-demo \\
      --url http://127.0.0.1:8080/firmware/$sha.bin --version 1.1.0 --sha256 $sha --wait

(once 1.1.0 is on aloftd, devices that were not triggered take it at their next check).
Or push, or look:

  export ALOFT_PSK=$psk
  $bin/aloft status 127.0.0.2 127.0.0.3 127.0.0.4
  $bin/aloft deploy $run/demo-1.1.0.bin 127.0.0.0/29 --canary 1
  $bin/aloft deploy $run/demo-1.2.0-panics.bin 127.0.0.2    (it panics: rolled back)
  curl --data-binary @$run/demo-1.1.0.bin -H 'Content-Type: application/octet-stream' \
      -H "Authorization: Bearer $psk" http://127.0.0.3:8032/ota
  ALOFT_TOKEN_FILE=$run/aloftd/token $bin/aloft server devices

Logs: $run/node*.log, $run/aloftd.log, $run/mosquitto.log      Ctrl-C stops everything.
MSG
wait
