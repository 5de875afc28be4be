# Sourced by the scripts that build a Python virtualenv (plugins/python/build.sh,
# tests/mcp-client/setup.sh): sets `python` to a python3 >= 3.10 with venv and ensurepip
# (MOAT_PYTHON first, if set), or stops with what to install. Needs `fail` (prints, exits).
# shellcheck shell=bash
python=
for candidate in ${MOAT_PYTHON:-} python3 python3.14 python3.13 python3.12 python3.11 python3.10; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; then
        python=$(command -v "$candidate")
        break
    fi
done
[[ -n $python ]] || fail "no python3 >= 3.10 found: install it, e.g." \
    "\`apt-get install python3 python3-venv\` or \`brew install python\`, or set MOAT_PYTHON"
"$python" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
    fail "$python has no venv/ensurepip module: install it, e.g. \`apt-get install python3-venv\`"
