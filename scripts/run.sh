#!/usr/bin/env bash
# make run: build everything (the update page included), start the update server
# (aloftd, embedded SQLite) on 127.0.0.1:8080 with the demo releases, and three
# simulated devices on 127.0.0.2-4:8032 running demo firmware; Ctrl-C stops them.
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
    echo "stopped aloftd and the devices"
}
trap stop INT TERM EXIT

for i in 2 3 4; do
    rm -f "$run/node$i.img"
    "$bin/aloft-node" --create --flash-size 4M --firmware "$run/demo-1.0.0.bin" --www "$BUILD/www.bin" \
        --flash "$run/node$i.img" --listen "127.0.0.$i:8032" --log "$run/node$i.log" >/dev/null 2>&1 &
    pids+=($!)
done
mkdir -p "$run/aloftd"
"$bin/aloftd" --listen 127.0.0.1:8080 --data "$run/aloftd" --admin-token-file "$run/aloftd/token" \
    >"$run/aloftd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q "serving on" "$run/aloftd.log" 2>/dev/null && break; sleep 0.1; done
export ALOFT_SERVER=http://127.0.0.1:8080 ALOFT_TOKEN_FILE=$run/aloftd/token
for fw in demo-1.0.0 demo-1.1.0; do
    "$bin/aloft" server upload "$run/$fw.bin" >/dev/null
done
"$bin/aloft" server upload "$BUILD/www.bin" --frontend --platform aloft-demo >/dev/null

for i in 2 3 4; do # each node logs "http: serving" once it is up
    for _ in $(seq 50); do grep -q "http: serving" "$run/node$i.log" 2>/dev/null && break; sleep 0.1; done
done

cat <<MSG

aloft is running three simulated ESP32-S3 devices with demo firmware 1.0.0:

  http://127.0.0.2:8032/    http://127.0.0.3:8032/    http://127.0.0.4:8032/

and the update server, aloftd, at http://127.0.0.1:8080/ holding the demo releases
(admin token in $run/aloftd/token).

Open one in a browser for its update page, or try from another terminal:

  $bin/aloft status 127.0.0.2 127.0.0.3 127.0.0.4
  $bin/aloft deploy $run/demo-1.1.0.bin 127.0.0.0/29 --canary 1
  $bin/aloft deploy $run/demo-1.2.0-panics.bin 127.0.0.2    (it panics: rolled back)
  curl --data-binary @$run/demo-1.1.0.bin -H 'Content-Type: application/octet-stream' http://127.0.0.3:8032/ota
  ALOFT_TOKEN_FILE=$run/aloftd/token $bin/aloft server releases aloft-demo
  curl -s -o /dev/null -w '%{http_code}\n' -H 'x-ESP32-STA-MAC: 24:0A:C4:00:00:01' 'http://127.0.0.1:8080/update?dev=aloft-demo&ver=1.0.0'

Logs: $run/node*.log, $run/aloftd.log      Ctrl-C stops everything.
MSG
wait
