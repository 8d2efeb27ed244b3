#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/fuzz_*.cpp) with clang in its own build
# directory and runs each for a bounded time on a seed corpus; exits non-zero on any
# crash, leaving the crashing input under $BUILD_DIR/fuzz-artifacts/.
#
#   FUZZ_SECONDS  run time per target in seconds (default 30)
#   BUILD_DIR     build directory (default build-fuzz at the repository root)
#
# A target gets seeds from a function seed_<target> below, when there is one.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-30}

# Writes a safetensors file $1 with header $2 and data bytes $3 (printf escapes).
write_safetensors_file() {
  local n=${#2} i
  {
    for ((i = 0; i < 8; i++)); do printf "\\$(printf '%03o' $(((n >> (8 * i)) & 255)))"; done
    printf '%s' "$2"
    printf "$3"
  } >"$1"
}

# Valid files, and a dictionary of the header's vocabulary so that mutations reach the
# checks behind the JSON parser.
seed_fuzz_safetensors() {
  write_safetensors_file "$1/valid.safetensors" \
    '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' \
    '\000\000\200\077\000\000\000\100'
  write_safetensors_file "$1/mixed.safetensors" \
    '{"a":{"dtype":"BF16","shape":[],"data_offsets":[0,2]},"e":{"dtype":"U8","shape":[0,3],"data_offsets":[2,2]},"i":{"dtype":"I64","shape":[1],"data_offsets":[2,10]}}  ' \
    '\001\002\003\004\005\006\007\010\011\012'
  local w
  for w in dtype shape data_offsets __metadata__ F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL \
    F8_E4M3 F8_E5M2 U16 U32 U64; do
    echo "\"\\\"$w\\\"\""
  done >"$1.dict"
}

# Valid configs of both formats, and the hostile shapes of issue 14: deeply nested and very
# long patterns (std::regex recursed on 20,000 '(' and crashed), several YAML documents,
# invalid UTF-8.
seed_fuzz_config() {
  cp "$root"/configs/*.yaml "$1/"
  local head='pgkm: 1\ndefaults:\n  block_size: 4\n  n_centroids: 16\nrules:\n  - match: '
  printf "$head'%s'\n" "$(printf '(%.0s' {1..20000})a$(printf ')%.0s' {1..20000})" >"$1/deep.yaml"
  printf "$head'%s'\n" "$(printf '(%.0s' {1..40})a$(printf ')%.0s' {1..40})" >"$1/nested40.yaml"
  printf "$head'%s'\n" "$(printf 'a%.0s' {1..10000})" >"$1/long.yaml"
  printf "$head'%s'\n" "$(printf '[a]%.0s' {1..3000})" >"$1/classes.yaml"
  printf "$head'fc\377'\n" >"$1/utf8.yaml"
  printf "$head'.*'\n---\npgkm: 1\n" >"$1/two_docs.yaml"
  printf 'layers_to_quantize:\n  - %s\n' "$(printf '(%.0s' {1..5000})" >"$1/fairseq_deep.yaml"
  printf '# found by fuzz_config: LoadAll looped forever\n, a\n  - b\n' >"$1/stray_comma.yaml"
}

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGKM_BUILD_FUZZERS=ON -DPGKM_BUILD_TESTS=OFF \
  -DPGKM_BUILD_BENCH=OFF -DPGKM_ENABLE_CUDA=OFF >/dev/null

known=$(cmake --build "$build" --target help)
targets=()
for src in "$root"/tests/fuzz/fuzz_*.cpp; do
  t=$(basename "$src" .cpp)
  if grep -qw -- "$t" <<<"$known"; then
    targets+=("$t")
  else
    echo "warning: $t.cpp has no pgkm_fuzzer() line in tests/fuzz/CMakeLists.txt; skipped" >&2
  fi
done
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

mkdir -p "$build/fuzz-artifacts"
for t in "${targets[@]}"; do
  corpus="$build/fuzz-corpus/$t"
  mkdir -p "$corpus"
  if declare -F "seed_$t" >/dev/null; then "seed_$t" "$corpus"; fi
  echo "== $t: ${seconds}s"
  dict=()
  if [[ -f "$corpus.dict" ]]; then dict=(-dict="$corpus.dict"); fi
  "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz-artifacts/$t-" "${dict[@]}" "$corpus"
done
echo "all fuzz targets ran ${seconds}s without a crash"
