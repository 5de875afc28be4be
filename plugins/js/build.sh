#!/usr/bin/env bash
# Builds every JavaScript guest into a component with componentize-js, from moat's own WIT
# worlds (tool-plugin for tools, guard-plugin for guards):
#   plugins/js/NAME/app.js          -> target/wasm/js/NAME.wasm          (example tools)
#   plugins/js/policies/NAME/app.js -> target/wasm/js-policies/NAME.wasm (example guards)
#   tests/plugins-js/NAME/app.js    -> target/wasm/tests-js/NAME.wasm    (test tools)
#   tests/policies-js/NAME/app.js   -> target/wasm/test-policies-js/NAME.wasm (test guards)
#   tests/policies-js/NAME/app.js   -> target/wasm/test-policies-js/NAME.wasm (test guards)
# The builder lives in target/js-builder, installed with `npm ci` from plugins/js/package.json
# and package-lock.json (exact versions, integrity-checked); it is reinstalled only when those
# change. plugins/js/componentize.mjs does the build of one guest and checks its imports.
# A component is rebuilt only when its source, the WIT or the builder changed.
set -euo pipefail
cd "$(dirname "$0")/../.."

builder=target/js-builder
stamp=$builder/.moat-stamp
say() { printf 'plugins (js): %s\n' "$*" >&2; }
fail() {
    say "$@"
    exit 1
}

# componentize-js's dependencies declare Node.js 20.19 or newer (oxc-parser, rolldown).
get_node="install Node.js 20.19 or newer, with npm: \`apt-get install nodejs npm\` where the \
distribution ships it (Debian 13 does), otherwise see https://nodejs.org/en/download"
command -v node >/dev/null || fail "node is missing: $get_node"
command -v npm >/dev/null || fail "npm is missing: $get_node"
node -e 'const [a, b] = process.versions.node.split(".").map(Number);
         process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
    fail "node $(node --version) is too old: $get_node"

want=$(cat plugins/js/package.json plugins/js/package-lock.json | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
    say "installing componentize-js into $builder from plugins/js/package-lock.json"
    rm -f "$stamp"
    mkdir -p "$builder"
    cp plugins/js/package.json plugins/js/package-lock.json "$builder/"
    (cd "$builder" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
        fail "could not install componentize-js into $builder (needs the npm registry)"
    printf '%s\n' "$want" >"$stamp"
fi
cp plugins/js/componentize.mjs "$builder/componentize.mjs"

build() { # SOURCE_DIR OUT_DIR WORLD
    local src=$1 out=$2 world=$3
    [[ -d $src ]] || return 0
    mkdir -p "$out"
    for dir in "$src"/*/; do
        local name
        name=$(basename "$dir")
        [[ -f $dir/app.js ]] || continue
        local wasm=$out/$name.wasm
        # cases.json (calls and how they must end, for `just test`) is not built in.
        if [[ -f $wasm && -z $(find "$dir" wit "$stamp" plugins/js/componentize.mjs \
            -newer "$wasm" -type f -not -name cases.json -print -quit) ]]; then
            continue
        fi
        say "building $wasm"
        node "$builder/componentize.mjs" "${dir%/}/app.js" wit "$world" "$wasm.tmp" ||
            fail "componentize-js could not build $dir"
        mv "$wasm.tmp" "$wasm"
    done
}
build plugins/js target/wasm/js tool-plugin
build plugins/js/policies target/wasm/js-policies guard-plugin
build tests/plugins-js target/wasm/tests-js tool-plugin
build tests/policies-js target/wasm/test-policies-js guard-plugin
build tests/policies-js target/wasm/test-policies-js guard-plugin
