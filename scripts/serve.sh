#!/usr/bin/env bash
# Sets everything up (apt, pip, build) and runs a Kasagi server on port 8080.
#   bash scripts/serve.sh                  ws://0.0.0.0:8080/sync
#   bash scripts/serve.sh --tick-rate 30   any `kasagi serve` option
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/kasagi serve --port 8080 "$@"
