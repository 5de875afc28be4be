#!/usr/bin/env bash
# Installs the one system library the host's build needs beyond a Rust toolchain: libclang,
# which bindgen (through libsqlite3-sys's `preupdate_hook` feature, the hook that counts every
# row SQLite changes) loads to generate SQLite's bindings. Installed with apt-get (Debian's
# libclang-dev, bookworm: clang 14) when it is missing and we are allowed to; otherwise stops
# with what to install. Does nothing when libclang is already there or LIBCLANG_PATH is set.
set -euo pipefail

debian_packages=(libclang-dev)

say() { printf 'deps: %s\n' "$*" >&2; }

have_libclang() {
    [ -n "${LIBCLANG_PATH:-}" ] && return 0
    local dir
    for dir in /usr/lib/llvm-*/lib /usr/lib/*-linux-gnu /usr/lib64 /usr/lib /usr/local/lib \
        /opt/homebrew/opt/llvm/lib /usr/local/opt/llvm/lib /Library/Developer/CommandLineTools/usr/lib; do
        # libclang itself, not libclang-cpp (which bindgen cannot use).
        compgen -G "$dir/libclang.so*" >/dev/null || compgen -G "$dir/libclang-[0-9]*.so*" >/dev/null ||
            compgen -G "$dir/libclang.dylib" >/dev/null && return 0
    done
    return 1
}

install_debian() {
    command -v apt-get >/dev/null 2>&1 || return 1
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        sudo -n true 2>/dev/null || return 1
        sudo=(sudo -n)
    fi
    say "installing ${debian_packages[*]} with apt-get (libclang, for SQLite's bindings; about a minute)"
    timeout 900 "${sudo[@]}" apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive timeout 900 "${sudo[@]}" apt-get install -y -qq "${debian_packages[@]}" >&2
}

have_libclang && exit 0
if install_debian && have_libclang; then
    say "libclang installed"
    exit 0
fi
printf 'deps: error: libclang is missing, and it could not be installed here.
    The host build generates SQLite'"'"'s bindings with bindgen, which needs libclang. Install it:
      Debian/Ubuntu (as root): apt-get install -y libclang-dev
      Fedora: dnf install clang-devel     macOS: xcode-select --install
    or point LIBCLANG_PATH at the directory holding libclang.so.\n' >&2
exit 1
