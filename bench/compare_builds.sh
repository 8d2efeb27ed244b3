#!/usr/bin/env bash
# Runs two pgkm binaries on the same model and config, alternately, writing to the same
# paths, and checks that they produce the same archive, report and progress output
# (tests/e2e/compare_outputs.py: everything but wall-clock times); prints each run's
# wall time, so both builds are timed in one session.
#
#   bench/compare_builds.sh OLD_PGKM NEW_PGKM MODEL CONFIG [REPEATS] [-- extra pgkm args]
#
# Example (the quickstart's run, 3 alternating repeats):
#   bench/compare_builds.sh /tmp/old/pgkm build/launch/pgkm "$MODEL" configs/minilm.yaml 3
set -euo pipefail
old=$1 new=$2 model=$3 config=$4
repeats=${5:-1}
shift $(( $# < 5 ? $# : 5 ))
[ "${1:-}" = "--" ] && shift
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/pgkm-compare-XXXXXX")
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 "$repeats"); do
  for side in old new; do
    bin=$old; [ "$side" = new ] && bin=$new
    start=$EPOCHREALTIME
    "$bin" quantize "$model" --config "$config" --out "$work/out.h5" \
      --report "$work/out.json" "$@" > "$work/stdout" 2> "$work/stderr" ||
      { cat "$work/stderr"; exit 1; }
    awk -v s="$side" -v i="$i" -v a="$start" -v b="$EPOCHREALTIME" \
      'BEGIN { printf "%s run %d: %.2f s\n", s, i, b - a }'
    mv "$work/out.h5" "$work/$side.h5"
    mv "$work/out.json" "$work/$side.json"
    mv "$work/stdout" "$work/$side.stdout"
  done
done
python3 "$here/tests/e2e/compare_outputs.py" --allow-new-keys \
  --archives "$work/old.h5" "$work/new.h5" --reports "$work/old.json" "$work/new.json" \
  --stdout "$work/old.stdout" "$work/new.stdout"
