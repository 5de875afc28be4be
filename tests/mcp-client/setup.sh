#!/usr/bin/env bash
# Installs the Python MCP client moat's interop tests drive (tests/all/mcp_client.rs) into a
# virtualenv of its own, target/mcp-venv, from tests/mcp-client/requirements.txt: every
# package pinned and hash-checked, wheels only. Fast when it is up to date: a stamp holds the
# sha256 of requirements.txt (and the Python it was built with); any change rebuilds it.
#
# Needs python3 >= 3.10 with venv and ensurepip (set MOAT_PYTHON to choose one), and access
# to PyPI (or a mirror: PIP_INDEX_URL) when it (re)builds.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/mcp-venv
requirements=tests/mcp-client/requirements.txt
stamp=$venv/.moat-stamp

say() { printf 'mcp-client: %s\n' "$*" >&2; }
fail() {
    say "$@"
    exit 1
}

source plugins/python/find-python.sh

want=$("$python" -c '
import hashlib, platform, sys
print("requirements", hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())
print("python", platform.python_version(), sys.executable)' "$requirements")

mkdir -p target
# One build at a time (`just test` may run twice at once); flock is not everywhere.
if command -v flock >/dev/null 2>&1; then
    exec 9>"target/mcp-venv.lock"
    flock 9
fi

if [[ -f $stamp && -x $venv/bin/python && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

say "building $venv from $requirements with $python"
rm -f "$stamp"
"$python" -m venv --clear "$venv" || fail "could not create the virtualenv $venv with $python" \
    "(on Debian and Ubuntu: \`apt-get install python3-venv\`)"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet --no-input \
    --require-hashes --only-binary :all: -r "$requirements" ||
    fail "could not install the Python MCP client from $requirements (see pip's message above):" \
        "it needs PyPI (or a mirror, PIP_INDEX_URL) and wheels for this Python and platform;" \
        "tests/mcp-client/lock.sh regenerates the pins"
version=$("$venv/bin/python" -c 'import importlib.metadata as m, mcp.client.stdio, mcp.client.streamable_http; print(m.version("mcp"))') ||
    fail "the virtualenv $venv was built but cannot import the MCP client"
# Written last: a half-built virtualenv never looks complete.
printf '%s\n' "$want" >"$stamp"
say "$venv ready: mcp $version ($("$venv/bin/python" --version))"
