#!/usr/bin/env bash
# Installs everything Kasagi needs on Debian 12 and builds it into .venv. Idempotent:
# a second run only rebuilds what changed.
#   scripts/setup.sh            the server and the client library
#   scripts/setup.sh --test     also the test dependencies
#   KASAGI_SANITIZE=1 ...       builds the core with ASan+UBSan (into its own build dir)
#   KASAGI_TSAN=1 ...           builds the core with ThreadSanitizer (into its own build dir)
# When node and npm are on the machine it also installs and builds the JavaScript client
# (clients/js: the SDK and the demo page in clients/js/dist).
set -euo pipefail
cd "$(dirname "$0")/.."

# haproxy: the load balancer of examples/multi_instance, which the test suite runs.
APT_PACKAGES=(g++ cmake ninja-build pkg-config python3 python3-dev python3-venv
              libboost1.81-dev libboost-json1.81-dev libhiredis-dev libssl-dev redis-server
              haproxy chromium)  # haproxy: examples/multi_instance; chromium: the demo's browser tests
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# msgpack-c's C++ headers: Debian's libmsgpack-cxx-dev depends on the Boost 1.74 dev
# packages, which conflict with Boost 1.81. We use msgpack-c header-only without Boost
# (MSGPACK_NO_BOOST), so we take the headers out of the package instead of installing it.
if [ ! -f /usr/include/msgpack.hpp ] && [ ! -f /usr/local/include/msgpack.hpp ]; then
  echo "setup: unpacking msgpack-c headers into /usr/local/include"
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download libmsgpack-cxx-dev >/dev/null 2>&1 || { $SUDO apt-get update -qq && apt-get download libmsgpack-cxx-dev >/dev/null; })
  dpkg-deb -x "$tmp"/libmsgpack-cxx-dev_*.deb "$tmp/x"
  $SUDO cp -r "$tmp/x/usr/include/." /usr/local/include/
  rm -rf "$tmp"
fi

# The sanitizer build gets a virtualenv of its own, so the two builds never overwrite
# each other's extension module.
VENV=.venv
[ "${KASAGI_SANITIZE:-0}" = "1" ] && VENV=.venv-sanitize
[ "${KASAGI_TSAN:-0}" = "1" ] && VENV=.venv-tsan
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
$PY -m pip install -q --upgrade pip >/dev/null
$PY -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" ninja >/dev/null
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

build_args=(--no-build-isolation -q -C cmake.define.KASAGI_WERROR=ON)
if [ "${KASAGI_SANITIZE:-0}" = "1" ]; then
  build_args+=(-C cmake.define.KASAGI_SANITIZE=ON -C cmake.define.KASAGI_TOOLS=OFF
              -C "build-dir=build/sanitize")
elif [ "${KASAGI_TSAN:-0}" = "1" ]; then
  build_args+=(-C cmake.define.KASAGI_TSAN=ON -C cmake.define.KASAGI_TOOLS=OFF
               -C "build-dir=build/tsan")
fi
echo "setup: building kasagi"
$PY -m pip install "${build_args[@]}" -e ".${extras}"

# The JavaScript client: `npm ci` only when package-lock.json changed since the last one (a
# copy of it in node_modules says what is installed); no install scripts are needed (esbuild
# and TypeScript ship their binaries as packages). Then build it, which takes seconds.
# The sanitizer builds skip it: no test runs it against them (and CI builds them while the
# normal suite, which does use it, runs).
if [ "$VENV" = ".venv" ]; then
  if command -v npm >/dev/null && command -v node >/dev/null; then
    (
      cd clients/js
      if ! cmp -s package-lock.json node_modules/.kasagi-installed-lock.json; then
        echo "setup: installing the JavaScript client's dependencies"
        npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
        cp package-lock.json node_modules/.kasagi-installed-lock.json
      fi
      echo "setup: building the JavaScript client"
      npm run --silent build
    )
  else
    echo "setup: node/npm not found: the JavaScript client (clients/js) is not built"
  fi
fi
