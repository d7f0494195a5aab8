# Shared helpers for the project's scripts (sourced, not run).

# The system packages the build, the tests and the demo need.
SLUICE_PACKAGES=(clang llvm libbpf-dev gcc libc6-dev iproute2 ethtool nftables iputils-ping procps curl apache2-utils wrk)

die() {
    echo "error: $*" >&2
    exit 1
}

require_root() {
    [ "$(id -u)" -eq 0 ] || die "$1 needs root (XDP, AF_XDP and network namespaces): run it as root, or with sudo"
}

# Installs whichever of the given Debian packages are missing; quiet when
# everything is already there.
install_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (install them, or run as root)"
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

require_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install stable Rust (https://rustup.rs) first"
}
