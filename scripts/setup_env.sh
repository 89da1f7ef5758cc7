#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) with everything the study and
# the tests need. Idempotent: a stamp keyed on pyproject.toml and this script skips the
# pip step when nothing changed. Debian packages are installed when running as root.
#   EMOLIB_VENV   where the venv lives (default: <project>/.venv)
#   EMOLIB_PYTHON the interpreter to build it from (default: python3.11, else python3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EMOLIB_VENV:-$here/.venv}"
python="${EMOLIB_PYTHON:-$(command -v python3.11 || command -v python3)}"

# Debian packages: Vulkan loader and OpenMP for Real-ESRGAN (ncnn), Chromium for the
# annotator's browser test. Only missing ones are installed, and only as root.
apt_packages=(libvulkan1 libomp5-14 chromium)
missing=()
if command -v dpkg-query >/dev/null; then
  for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: warning: missing Debian packages ${missing[*]} (Real-ESRGAN / browser test need them);" \
         "install them with: sudo apt-get install ${missing[*]}" >&2
  fi
fi

[ -x "$venv/bin/python" ] || { echo "setup: creating $venv"; "$python" -m venv "$venv"; }
stamp="$venv/.emolib-setup-$(cat "$here/pyproject.toml" "$here/scripts/setup_env.sh" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing emolib and its dependencies into $venv (a few minutes the first time)"
  "$venv/bin/pip" install -q --upgrade pip
  # torch first and alone: the pinned CPU/GPU build, before anything can pull another one.
  "$venv/bin/pip" install -q "torch==2.14.1" "torchvision==0.29.1"
  "$venv/bin/pip" install -q -e "$here[all]"
  rm -f "$venv"/.emolib-setup-*
  touch "$stamp"
fi
echo "setup: environment ready ($venv)"
