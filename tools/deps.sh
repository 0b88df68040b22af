# shellcheck shell=bash
# The Debian packages rpfs builds with, and the one installer of missing
# packages; sourced by examples/quickstart.sh and tests/run.sh.
#
#   BUILD_DEPS                the build's compiler, tools and libraries
#   deps_install PKG...       apt-get install those of PKG not installed
#                             (sudo when not root); 0, or 1 when it failed

BUILD_DEPS=(build-essential meson ninja-build pkg-config libfuse3-dev fuse3
            libqcow-dev libvhdi-dev libvmdk-dev libxxhash-dev libzstd-dev
            libcurl4-openssl-dev libssl-dev libxml2-dev libjansson-dev libmount-dev
            libblkid-dev libsodium-dev
            nbdkit-plugin-dev)  # the NBD export (nbd/)

deps_install() {
    local p missing=() sudo=
    command -v dpkg-query >/dev/null || return 0
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    (( ${#missing[@]} )) || return 0
    printf 'installing: %s\n' "${missing[*]}" >&2
    [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -q >&2 &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2
}
