#!/usr/bin/env bash
# Installs, with apt-get, whatever imgdl's build and tests need and this machine lacks.
# Idempotent: a machine that already has everything runs no apt-get at all.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libcurl4-openssl-dev nlohmann-json3-dev libcli11-dev doctest-dev
  libcpp-httplib-dev libssl-dev zlib1g-dev libzstd-dev
  clang libclang-rt-14-dev   # sanitizer and libFuzzer runtimes
  bsdutils                   # `script`, which drives the CLI under a pseudo-terminal in tests
  time                       # /usr/bin/time, which measures the CLI's peak RSS in tests
  nodejs python3-cryptography  # the HTTPS/HTTP/2 test server (tests/support/tls_server.js) and its certificates
  dpkg-dev file              # cpack -G DEB: dpkg-shlibdeps for imgdl's Depends, and `file`, which CPack runs on
                             # each file to find the ELF ones (the package test, tests/package)
  groff-base zsh             # the man page's and zsh completion's tests render and read them (tests/cli/docs_test.py)
)
# Extra groups on request, e.g. `install-deps.sh bench` for the benchmark's peers.
for group in "$@"; do
  case "$group" in
    # libboost-dev: Boost.Asio, executor_bench's peer; nginx-light and openssl: the HTTPS scenarios' server
    # and certificates; ca-certificates: the system-sized CA file of https-hosts-bundle.
    bench) packages+=(curl wget2 aria2 python3 time libboost-dev nginx-light openssl ca-certificates) ;;
    # lintian: Debian's checks of the .deb files (docs/packaging.md), by hand before a release.
    package) packages+=(lintian) ;;
    # slurmctld, slurmd and the client commands (sbatch, squeue, scontrol): tests/slurm runs a
    # one-node cluster on 127.0.0.1 with them.
    slurm) packages+=(slurm-wlm) ;;
    *) echo "install-deps.sh: unknown group '$group'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
