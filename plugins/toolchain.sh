#!/usr/bin/env bash
# Builds every guest crate for wasm32 and turns each into a component with
# `moat componentize`:
#   plugins/NAME           -> target/wasm/tools/NAME.wasm
#   plugins/policies/NAME  -> target/wasm/policies/NAME.wasm
#   tests/plugins/NAME     -> target/wasm/tests/NAME.wasm
#   tests/policies/NAME    -> target/wasm/test-policies/NAME.wasm
#   benches/plugins/NAME   -> target/wasm/bench/NAME.wasm
# Tools and policies build in two cargo runs: each enables a different world of moat-guest,
# and one run would unify the features and give every component both worlds.
#
# Toolchain, in order of preference:
#   1. an installed rustup target wasm32-unknown-unknown (the normal path on a machine with
#      network: `rustup target add wasm32-unknown-unknown`);
#   2. Debian's rustc-web with its std source, building std with -Zbuild-std (these machines
#      cannot download a rustup target), installed with apt-get when we are allowed to;
#   3. otherwise stop with a message saying what to install.
# `rustup target add` is never run here: without network it hangs instead of failing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=wasm32-unknown-unknown
moat=${MOAT:-$root/target/debug/moat}
out=$root/target/wasm
# The Debian toolchain this project was verified with (bookworm-security, 2026-11).
debian_packages=(rustc-web cargo-web rust-web-src lld-19)
debian_min_rustc=1.90

say() { printf 'plugins: %s\n' "$*" >&2; }
die() { printf 'plugins: error: %s\n' "$*" >&2; exit 1; }

have_rustup_target() {
    command -v rustup >/dev/null 2>&1 &&
        timeout 30 rustup target list --installed 2>/dev/null | grep -qx "$target"
}

debian_ready() {
    [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] &&
        [ -d /usr/lib/rustlib/src/rust/library ] && [ -x /usr/lib/llvm-19/bin/wasm-ld ] || return 1
    local version
    version=$(/usr/bin/rustc --version | awk '{print $2}')
    [ "$(printf '%s\n%s\n' "$debian_min_rustc" "$version" | sort -V | head -1)" = "$debian_min_rustc" ]
}

install_debian() {
    command -v apt-get >/dev/null 2>&1 || return 1
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        sudo -n true 2>/dev/null || return 1
        sudo=(sudo -n)
    fi
    say "installing ${debian_packages[*]} with apt-get (about a minute)"
    timeout 900 "${sudo[@]}" apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive timeout 900 "${sudo[@]}" apt-get install -y -qq "${debian_packages[@]}" >&2
}

# Not --locked: a crate `moat new` just added to the workspace must get its line in
# plugins/Cargo.lock. Without --locked cargo only adds what is missing (the new crate, whose
# dependencies are the workspace's, already locked); it never moves a locked version.
build_rustup() { # package arguments
    (cd "$root/plugins" && cargo build --release --target "$target" "$@")
}

build_debian() { # package arguments
    (
        cd "$root/plugins"
        # The rustup shims must not pick the compiler: this build uses Debian's.
        unset RUSTUP_TOOLCHAIN CARGO RUSTC_WRAPPER RUSTFLAGS
        PATH=/usr/lib/llvm-19/bin:$PATH \
            CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld \
            RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
            /usr/bin/cargo build --release -Zbuild-std=std,panic_abort --target "$target" "$@"
    )
}

crates() { # directory of crates: prints "-p NAME" for each
    for crate in "$1"/*/; do
        [ -f "$crate/Cargo.toml" ] && printf -- '-p %s ' "$(basename "$crate")"
    done
}

if have_rustup_target; then
    build=build_rustup
    say "building guests with the rustup target $target"
elif debian_ready || { install_debian && debian_ready; }; then
    build=build_debian
    say "building guests with Debian's rustc $(/usr/bin/rustc --version | awk '{print $2}') and -Zbuild-std"
else
    die "no WebAssembly toolchain. Either install the rustup target
    (rustup target add $target, needs network), or on Debian/Ubuntu as root:
    apt-get install -y ${debian_packages[*]}"
fi

tools="$(crates "$root/plugins")$(crates "$root/tests/plugins")$(crates "$root/benches/plugins")"
policies="$(crates "$root/plugins/policies")$(crates "$root/tests/policies")"
# Word splitting of the package lists is intended. An empty list would build everything at
# once, which is exactly what must not happen.
[ -z "$tools" ] || $build $tools
[ -z "$policies" ] || $build $policies

[ -x "$moat" ] || die "$moat is missing: run \`cargo build -p moat-cli\` (or \`just build\`) first"
built=$root/plugins/target/$target/release
componentize() { # crate dir, output dir
    local name core
    name=$(basename "$1")
    core=$built/${name//-/_}.wasm
    [ -f "$core" ] || die "$core was not built (is $1 a member of plugins/Cargo.toml?)"
    mkdir -p "$2"
    "$moat" componentize "$core" -o "$2/$name.wasm"
    say "$2/$name.wasm ($(wc -c <"$2/$name.wasm") bytes)"
}
for pair in "plugins tools" "plugins/policies policies" "tests/plugins tests" "tests/policies test-policies" "benches/plugins bench"; do
    set -- $pair
    for crate in "$root/$1"/*/; do
        [ -f "$crate/Cargo.toml" ] && componentize "$crate" "$out/$2"
    done
done
