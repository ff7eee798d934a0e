#!/usr/bin/env bash
# The CONFIG_ values of aloft's component and its example, as sdkconfig.h
# lines: the defaults of their Kconfig files (a bool that is n is absent;
# the conditions of a default are not evaluated: ours have none), then the
# example's sdkconfig.defaults over them. For the builds without idf.py:
# the ESP32 compile check, the host build over the fakes and make size.
# usage: tests/esp-idf/kconfig.sh     (to stdout)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
example=$root/examples/esp-idf/hello-aloft
awk '
    /^[ \t]*(menu)?config[ \t]/ { name = $2; type = ""; next }
    /^[ \t]*(bool|int|hex|string)([ \t]|$)/ { type = $1; next }
    /^[ \t]*default[ \t]/ && name != "" && !(name in seen) {
        seen[name] = 1
        v = $0; sub(/^[ \t]*default[ \t]+/, "", v); sub(/[ \t]+if[ \t].*$/, "", v)
        if (type != "bool") print "#define CONFIG_" name " " v
        else if (v == "y") print "#define CONFIG_" name " 1"
    }' "$root/ports/esp-idf/aloft/Kconfig" "$example/main/Kconfig.projbuild"
sed -n 's/^CONFIG_\([A-Za-z0-9_]*\)=\(.*\)$/\1 \2/p' "$example/sdkconfig.defaults" | while read -r name value; do
    echo "#undef CONFIG_$name"
    case $value in
    y) echo "#define CONFIG_$name 1" ;;
    n) ;;
    *) echo "#define CONFIG_$name $value" ;;
    esac
done
