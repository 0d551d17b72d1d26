#!/usr/bin/env bash
# Installs what building, running and testing Roost needs on Debian 12, and checks the
# toolchains that cannot come from apt. Idempotent and quick when all is present.
#   scripts/install-deps.sh          what `make run` needs
#   scripts/install-deps.sh --test   plus what `make test` needs (PostgreSQL server, ...)
#   scripts/install-deps.sh --bench  plus the load tools of the benchmarks
set -euo pipefail

want_test=0
want_bench=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    --bench) want_bench=1 ;;
    *) echo "usage: $0 [--test] [--bench]" >&2; exit 2 ;;
  esac
done

# Debian packages, by the command or file that proves each one is there.
packages=(
  "gcc:gcc"                      # C parts of sqlite and ring
  "libc6-dev:/usr/lib/x86_64-linux-gnu/libc.a"  # static glibc: roost-init, the containers' pid 1
  "make:make"
  "pkg-config:pkg-config"
  "curl:curl"
  "ca-certificates:/etc/ssl/certs/ca-certificates.crt"
  # Instances: the OCI runtime, the builtin image, networking, Debian image builds.
  "runc:runc"
  "busybox-static:/bin/busybox"
  "nftables:nft"
  "iproute2:ip"
  "kmod:modprobe"               # loads br_netfilter where the kernel has it as a module
  "mmdebstrap:mmdebstrap"
  # Block volumes: images, filesystems, loop mounts, freeze for snapshots, rootfs archives.
  "qemu-utils:qemu-img"
  "e2fsprogs:/usr/sbin/mkfs.ext4"
  "util-linux:/usr/sbin/fsfreeze"
  "mount:/usr/bin/mount"
  "tar:tar"
  # MicroVMs: QEMU, overlays, the base disk, the kernel's LZ4 payload, fetching the kernel.
  "qemu-system-x86:qemu-system-x86_64"
  "qemu-utils:qemu-img"
  "e2fsprogs:mkfs.ext4"
  "lz4:lz4"
)
if [ "$want_test" = 1 ]; then
  packages+=(
    "postgresql:/usr/lib/postgresql"  # the store suite runs against a real server
    "procps:pkill"
    "openssh-client:ssh-keygen"   # SSH keys are checked with ssh-keygen, `roost ssh` with ssh
    "chromium:/usr/bin/chromium"  # the console's end-to-end tests (@playwright/test drives it)
    # The S3 suite drives the endpoint with real clients: Debian's AWS CLI, and boto3
    # (pinned, from PyPI) in a virtualenv made with Debian's python3-venv; the E2B SDKs
    # and the API fuzzer (Schemathesis) come the same way.
    "awscli:/usr/bin/aws"
    "python3-venv:/usr/share/doc/python3-venv"
  )
fi
if [ "$want_bench" = 1 ]; then
  packages+=("wrk:wrk")
fi

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for entry in "${packages[@]}"; do
  pkg="${entry%%:*}"
  probe="${entry#*:}"
  # The package itself, or (for tools installed otherwise) the command or file.
  installed "$pkg" && continue
  if [[ "$probe" == /* ]]; then
    [ -e "$probe" ] && [ "$pkg" != busybox-static ] && continue
  else
    command -v "$probe" >/dev/null 2>&1 && continue
  fi
  missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing packages (${missing[*]}); run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A virtualenv under target/ with the pinned packages of a requirements file, made anew
# when the file changes.
python_venv() {
  local name=$1 req=$2 what=$3
  local root venv
  root="$(cd "$(dirname "$0")/.." && pwd)"
  venv="$root/target/$name"
  req="$root/$req"
  if ! cmp -s "$req" "$venv/.requirements" 2>/dev/null; then
    echo "==> installing $what into $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$venv/.requirements"
  fi
}

if [ "$want_test" = 1 ]; then
  # boto3 for the S3 suite; Schemathesis for the API fuzzing run (tests/fuzz.rs).
  python_venv pyenv crates/roost/tests/s3/requirements.txt boto3
  python_venv fuzzenv crates/roost/tests/fuzz/requirements.txt schemathesis
fi

# The official E2B SDKs for the sandbox suite: a virtualenv under target/ with the pinned
# versions (crates/roost/tests/e2b/requirements.txt).
if [ "$want_test" = 1 ]; then
  root="$(cd "$(dirname "$0")/.." && pwd)"
  venv="$root/target/e2benv"
  req="$root/crates/roost/tests/e2b/requirements.txt"
  if ! cmp -s "$req" "$venv/.requirements" 2>/dev/null; then
    echo "==> installing the E2B SDKs into $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$venv/.requirements"
  fi
fi

# The official E2B JS SDK (pinned in crates/roost/tests/e2b/js/package-lock.json), in a
# folder under target/ the sandbox suite copies its script into.
if [ "$want_test" = 1 ] && command -v npm >/dev/null 2>&1; then
  root="$(cd "$(dirname "$0")/.." && pwd)"
  js="$root/target/e2b-js"
  src="$root/crates/roost/tests/e2b/js"
  if ! cmp -s "$src/package-lock.json" "$js/.package-lock.json" 2>/dev/null; then
    echo "==> installing the E2B JS SDK into $js"
    rm -rf "$js" && mkdir -p "$js"
    cp "$src/package.json" "$src/package-lock.json" "$js/"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$src/package-lock.json" "$js/.package-lock.json"
  fi
fi

# Toolchains apt cannot provide in the versions needed: check and explain.
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is missing: install Rust with rustup (the toolchain is pinned in rust-toolchain.toml)" >&2
  exit 1
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "error: Node.js and npm are missing: the console needs Node.js >= 20.19 (Debian package nodejs is too old; use NodeSource or nvm)" >&2
  exit 1
fi
node_version=$(node -p 'process.versions.node')
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit((a===20&&b>=19)||(a===22&&b>=12)||a>22?0:1)'; then
  echo "error: Node.js $node_version is too old to build the console: it needs ^20.19 or >= 22.12" >&2
  exit 1
fi
