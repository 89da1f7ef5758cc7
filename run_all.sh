#!/usr/bin/env bash
# Run the whole study for one profile: set up the environment, then execute every notebook
# in notebooks/ in order with papermill, headless.
#   ./run_all.sh [smoke|quick|paper|path/to/profile.yaml] [--fetch] [--force]   (default: quick)
#   --fetch: first download the profile's missing weights (emolib fetch PROFILE); a weight
#   that cannot be had is named and its model reported unavailable, and the run goes on.
#   --force: run every notebook, also those whose executed copy is up to date (a notebook is
#   up to date when nothing it depends on changed since it ran: emolib/run/runstate.py).
# Executed notebooks: results/<profile>/notebooks/NN_*.ipynb (+ .html for readers without
# Jupyter); figures/<profile>/ and tables/<profile>/ hold what the notebooks write; the
# browsable report (headline numbers, notebooks, figures, tables): results/<profile>/report/.
# Stops at the first failing notebook, naming it, with a non-zero exit status. A parameter a
# notebook does not declare stops it too, naming it (emolib/run/notebook_params.py), also when you
# call papermill yourself: `papermill notebooks/01_data.ipynb out.ipynb -p profile_name smoke`.
# Environment: EMOLIB_DATA_DIR (data root, default ./data), EMOLIB_RESULTS_DIR (where
# results/ figures/ tables/ go, default here), EMOLIB_NOTEBOOKS (default ./notebooks).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fetch=0 force=0 args=()
for arg in "$@"; do
  case "$arg" in --fetch) fetch=1 ;; --force) force=1 ;; *) args+=("$arg") ;; esac
done
profile="${args[0]:-quick}"
[ -f "$profile" ] && profile="$(cd "$(dirname "$profile")" && pwd)/$(basename "$profile")"
name="$(basename "$profile" .yaml)"
notebooks_dir="${EMOLIB_NOTEBOOKS:-$here/notebooks}"
# EMOLIB_SKIP_SETUP=1: the environment is already set up (the test suite runs this script so)
[ "${EMOLIB_SKIP_SETUP:-0}" = 1 ] || "$here/scripts/setup_env.sh"
venv="${EMOLIB_VENV:-$here/.venv}"
export EMOLIB_DATA_DIR="${EMOLIB_DATA_DIR:-$here/data}"
export PYTHONWARNINGS="ignore::DeprecationWarning"  # figures stay inline: no MPLBACKEND here
mapfile -t notebooks < <(find "$notebooks_dir" -maxdepth 1 -name '[0-9][0-9]_*.ipynb' | sort)
# Preflight: the profile loads (every key, type and the device on this machine) before any
# notebook runs, so `./run_all.sh paper` on a CPU-only machine stops at once with the fix; and
# every notebook declares the parameters passed to it below (papermill alone would only log an
# unknown one and run the notebook's defaults; inside a run, check_parameters stops it too).
out="${EMOLIB_RESULTS_DIR:-$here}/results/$name/notebooks"
mkdir -p "$out"
# It also prints each notebook's fingerprint (emolib/run/runstate.py: the notebook, the emolib
# package, the profile, the data files, library versions, the notebook before it) and whether
# its executed copy in $out was made with it: an up-to-date notebook is not run again.
preflight="$("$venv/bin/python" - "$profile" "$out" "${notebooks[@]}" <<'PY'
import sys
from pathlib import Path
from emolib.config import ConfigError, load_profile
from emolib.machine import DeviceError
from emolib.run.notebook_params import UnknownParameter, check_passed
from emolib.run.runstate import status_lines
try:
    load_profile(sys.argv[1])
    for notebook in sys.argv[3:]:
        check_passed(notebook, ["profile_name"])
except (ConfigError, DeviceError, UnknownParameter) as err:
    sys.exit(f"run_all: {err}")
print("\n".join(status_lines(Path(sys.argv[2]), sys.argv[1], sys.argv[3:])))
PY
)" || exit 2
mapfile -t states <<< "$preflight"
if [ "$fetch" = 1 ]; then
  "$venv/bin/python" -m emolib.run.cli fetch "$profile" \
    || echo "run_all: some weights could not be fetched (named above); their models will be reported unavailable" >&2
fi
echo "run_all: profile $name, data ${EMOLIB_DATA_DIR}, ${#notebooks[@]} notebooks -> $out"
start_all=$(date +%s)
i=0
for nb in "${notebooks[@]}"; do
  read -r fingerprint state _ <<< "${states[$i]}"
  i=$((i + 1))
  base="$(basename "$nb")"
  printf '[%d/%d] %s ... ' "$i" "${#notebooks[@]}" "$base"
  if [ "$force" = 0 ] && [ "$state" = up-to-date ]; then
    echo "up to date (nothing it depends on changed since its executed copy was made; --force runs it)"
    continue
  fi
  "$venv/bin/python" -m emolib.run.runstate forget "$out" "$base"
  start=$(date +%s)
  if ! "$venv/bin/papermill" "$nb" "$out/$base" -p profile_name "$profile" --cwd "$notebooks_dir" \
        --log-level WARNING --no-progress-bar > "$out/${base%.ipynb}.log" 2>&1; then
    echo "FAILED after $(( $(date +%s) - start )) s"
    tail -n 30 "$out/${base%.ipynb}.log" >&2
    echo "run_all: notebook $base failed (profile $name); executed copy: $out/$base" >&2
    exit 1
  fi
  if "$venv/bin/jupyter" nbconvert --to html --log-level WARN "$out/$base" >/dev/null 2>&1; then
    "$venv/bin/python" -m emolib.run.runstate record "$out" "$base" "$fingerprint"
  else
    echo -n "(HTML render failed) "
  fi
  echo "ok in $(( $(date +%s) - start )) s"
done
echo "run_all: all ${#notebooks[@]} notebooks of profile $name done in $(( $(date +%s) - start_all )) s"
# The report: index.html with headline numbers read from tables/<profile>/, every executed
# notebook as HTML, every figure with its caption, every table (emolib/run/report.py).
"$venv/bin/python" -m emolib.run.report "$name" \
  || { echo "run_all: the report of profile $name could not be built (error above)" >&2; exit 3; }
