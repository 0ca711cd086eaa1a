#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, into build/fuzz) and runs each for
# SECONDS (default 60) on its committed seed corpus in fuzz/corpus/. Inputs the fuzzer
# finds go to build/fuzz/corpus/ (never into the committed seeds); a crash stops the run
# with the reproducer in artifacts/fuzz/ and a non-zero exit.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]   targets: decode_json decode_msgpack
#                                                merge_patch jwt (default: all)
#   bash scripts/fuzz.sh --build-only [TARGET...] builds them, runs nothing
# Needs what scripts/setup.sh installs, plus clang and its libFuzzer/ASan runtime
# (installed here when missing: the runtime is only a recommended package of clang).
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=0
if [ "${1:-}" = "--build-only" ]; then
  build_only=1
  shift
  seconds=0
else
  seconds="${1:-60}"
  shift || true
fi
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(decode_json decode_msgpack merge_patch jwt)

missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "fuzz: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S . -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKASAGI_FUZZ=ON -DKASAGI_TOOLS=OFF >/dev/null
cmake --build build/fuzz --target "${targets[@]/#/fuzz_}"
[ "$build_only" = "1" ] && exit 0

mkdir -p artifacts/fuzz
for t in "${targets[@]}"; do
  work="build/fuzz/corpus/$t"
  mkdir -p "$work"
  echo "fuzz: $t for ${seconds}s"
  "build/fuzz/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/fuzz/$t-" -print_final_stats=1 "$work" "fuzz/corpus/$t" \
    2>"build/fuzz/$t.log" || { tail -60 "build/fuzz/$t.log"; exit 1; }
  grep -E "stat::number_of_executed_units|cov:" "build/fuzz/$t.log" | tail -2
done
