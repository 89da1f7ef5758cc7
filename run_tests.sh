#!/usr/bin/env bash
# Set up the environment and run the whole test suite (about 25 minutes on 2 CPU cores; the
# rehearsal of the paper route, tests/test_rehearsal.py, is 10 of them).
# Real-data tests read EMOLIB_DATA_DIR (default ../shared/data beside the checkout).
# Extra arguments go to pytest, e.g. ./run_tests.sh tests/test_data.py -x
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/scripts/setup_env.sh"
export EMOLIB_DATA_DIR="${EMOLIB_DATA_DIR:-$here/../shared/data}"
cd "$here"
exec "${EMOLIB_VENV:-$here/.venv}/bin/python" -m pytest "$@"
