#!/usr/bin/env bash
# Sets everything up (apt, pip, build) and runs the whole test suite. Idempotent.
#   bash scripts/test.sh                   everything
#   bash scripts/test.sh -m "not slow"     any pytest arguments
#   KASAGI_SANITIZE=1 bash scripts/test.sh the suite against the ASan+UBSan build
#   KASAGI_TSAN=1 bash scripts/test.sh -m tsan   the threaded tests under ThreadSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

VENV=.venv
if [ "${KASAGI_SANITIZE:-0}" = "1" ]; then
  VENV=.venv-sanitize
  # The interpreter is not instrumented: the ASan runtime must be loaded first. CPython
  # keeps some memory until exit on purpose, so leak checking is off.
  # libstdc++ too: python3 does not link it, and ASan must see its __cxa_throw at startup.
  export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_init_order=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export KASAGI_SANITIZED=1
elif [ "${KASAGI_TSAN:-0}" = "1" ]; then
  VENV=.venv-tsan
  # As above, the runtime must come first. A race fails the process (exit code 66), child
  # processes (kasagi serve) included, and its report is on stderr.
  export LD_PRELOAD="$(gcc -print-file-name=libtsan.so)"
  export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:ignore_noninstrumented_modules=1"
  # pytest must not capture file descriptor 2: a report written there before the abort
  # would be lost with the capture.
  export PYTEST_ADDOPTS="--capture=sys ${PYTEST_ADDOPTS:-}"
  export KASAGI_SANITIZED=1
fi
mkdir -p artifacts
exec "$VENV/bin/python" -m pytest "$@"
