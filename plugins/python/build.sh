#!/usr/bin/env bash
# Builds every Python guest into a component with componentize-py, from moat's own WIT
# world: plugins/python/NAME/app.py -> target/wasm/python/NAME.wasm (example tools) and
# tests/plugins-python/NAME/app.py -> target/wasm/tests-python/NAME.wasm (test plugins).
# The builder lives in its own virtualenv, target/py-builder, installed from
# plugins/python/requirements.txt (pinned, hash-checked); it is made or updated first.
# A component is rebuilt only when its source or the WIT changed.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/py-builder
requirements=plugins/python/requirements.txt
stamp=$venv/.moat-stamp
say() { printf 'plugins (python): %s\n' "$*" >&2; }
fail() {
    say "$@"
    exit 1
}

source plugins/python/find-python.sh
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" || ! -x $venv/bin/componentize-py ]]; then
    say "installing componentize-py into $venv from $requirements"
    rm -f "$stamp"
    "$python" -m venv --clear "$venv" ||
        fail "could not create $venv (on Debian and Ubuntu: \`apt-get install python3-venv\`)"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet --no-input \
        --require-hashes --only-binary :all: -r "$requirements" ||
        fail "could not install componentize-py from $requirements (needs PyPI or PIP_INDEX_URL)"
    printf '%s\n' "$want" >"$stamp"
fi

build() { # SOURCE_DIR OUT_DIR
    local src=$1 out=$2
    [[ -d $src ]] || return 0
    mkdir -p "$out"
    for dir in "$src"/*/; do
        local name
        name=$(basename "$dir")
        [[ -f $dir/app.py ]] || continue
        local wasm=$out/$name.wasm
        if [[ -f $wasm && -z $(find "$dir" wit -newer "$wasm" -type f -print -quit) ]]; then
            continue
        fi
        say "building $wasm"
        (cd "$dir" && "$OLDPWD/$venv/bin/componentize-py" -d "$OLDPWD/wit" -w tool-plugin \
            componentize app -o "$OLDPWD/$wasm.tmp") >/dev/null ||
            fail "componentize-py could not build $dir"
        mv "$wasm.tmp" "$wasm"
    done
}
build plugins/python target/wasm/python
build tests/plugins-python target/wasm/tests-python
