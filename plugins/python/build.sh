#!/usr/bin/env bash
# Builds every Python guest into a component with componentize-py, from moat's own WIT
# worlds: plugins/python/NAME/app.py -> target/wasm/python/NAME.wasm (example tools, world
# tool-plugin), plugins/python/policies/NAME/app.py -> target/wasm/python-policies/NAME.wasm
# (example guards, world guard-plugin) and tests/plugins-python/NAME/app.py ->
# target/wasm/tests-python/NAME.wasm (test tools), tests/policies-python/NAME/app.py ->
# target/wasm/test-policies-python/NAME.wasm (test guards).
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

build() { # SOURCE_DIR OUT_DIR WORLD
    local src=$1 out=$2 world=$3
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
        (cd "$dir" && "$OLDPWD/$venv/bin/componentize-py" -d "$OLDPWD/wit" -w "$world" \
            componentize app -o "$OLDPWD/$wasm.tmp") >/dev/null ||
            fail "componentize-py could not build $dir"
        mv "$wasm.tmp" "$wasm"
    done
}
build plugins/python target/wasm/python tool-plugin
build plugins/python/policies target/wasm/python-policies guard-plugin
build tests/plugins-python target/wasm/tests-python tool-plugin
build tests/policies-python target/wasm/test-policies-python guard-plugin

# Components written for other hosts, built as their own projects build them (see
# tests/foreign/NAME/SOURCE.md): NAME/ holds their sources unchanged (main.py, wit/),
# requirements.txt the componentize-py their lock file pins (hash-checked, installed into
# target/py-foreign/NAME) and componentize.args their componentize-py arguments, less `-o`.
# tests/foreign/NAME/ -> target/wasm/foreign/NAME.wasm, rebuilt only when NAME/ changed.
build_foreign() { # SOURCE_DIR OUT_DIR
    local src=$1 out=$2
    [[ -d $src ]] || return 0
    mkdir -p "$out"
    for dir in "$src"/*/; do
        dir=${dir%/}
        local name builder wasm want args
        name=$(basename "$dir")
        [[ -f $dir/main.py && -d $dir/wit && -f $dir/componentize.args ]] || continue
        [[ -f $dir/requirements.txt ]] || fail "$dir has no requirements.txt pinning its builder"
        wasm=$out/$name.wasm
        if [[ -f $wasm && -z $(find "$dir" -newer "$wasm" -type f -not -path '*/__pycache__/*' \
            -print -quit) ]]; then
            continue
        fi
        builder=target/py-foreign/$name
        want=$(sha256sum "$dir/requirements.txt" | cut -d' ' -f1)
        if [[ ! -f $builder/.moat-stamp || "$(cat "$builder/.moat-stamp")" != "$want" ]]; then
            say "installing the builder of $dir into $builder"
            "$python" -m venv --clear "$builder" || fail "could not create $builder"
            PIP_DISABLE_PIP_VERSION_CHECK=1 "$builder/bin/python" -m pip install --quiet \
                --no-input --require-hashes --only-binary :all: -r "$dir/requirements.txt" ||
                fail "could not install $dir/requirements.txt (needs PyPI or PIP_INDEX_URL)"
            printf '%s\n' "$want" >"$builder/.moat-stamp"
        fi
        read -r -a args <"$dir/componentize.args"
        say "building $wasm"
        (cd "$dir" && "$OLDPWD/$builder/bin/componentize-py" "${args[@]}" -o "$OLDPWD/$wasm.tmp") \
            >/dev/null || fail "componentize-py could not build $dir"
        mv "$wasm.tmp" "$wasm"
    done
}
build_foreign tests/foreign target/wasm/foreign
