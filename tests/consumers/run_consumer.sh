#!/usr/bin/env bash
# Builds and runs one outside project against imgdl, as CTest's consumer_* tests (see CMakeLists.txt):
#   find_package      stages `cmake --install` of the current build in a temporary prefix (or takes
#                     --prefix, an installed tree such as an unpacked .deb's usr/), builds find_package/
#                     against it (CMAKE_PREFIX_PATH) and the same main.cpp through
#                     `pkg-config --cflags --libs --static imgdl`, and runs both
#   add_subdirectory  builds add_subdirectory/, which adds imgdl's source tree, and runs it
# Each program downloads from an imgdl-testserver started here on a free loopback port, and prints
# "<sha256>  <path>" lines that `sha256sum -c` checks against the files on disk.
#
# Usage: run_consumer.sh <kind> --source=DIR --work=DIR --testserver=EXE [--imgdl-build=DIR | --prefix=DIR]
#          [--config=CFG] [--libdir=DIR] [--version=X.Y.Z] [--generator=G] [--cxx=CXX]
#          [--cxx-flags=FLAGS] [--linker-flags=FLAGS]
set -euo pipefail

kind="$1"
shift
source_dir="" work="" testserver="" imgdl_build="" config="" libdir="lib" version="" generator=""
cxx="c++" cxx_flags="" linker_flags="" prefix=""
for arg in "$@"; do
  # --key=value, so that empty values (a default build type, no extra flags) survive CTest's command line.
  value="${arg#*=}"
  case "$arg" in
    --source=*) source_dir="$value" ;;
    --work=*) work="$value" ;;
    --testserver=*) testserver="$value" ;;
    --imgdl-build=*) imgdl_build="$value" ;;
    --prefix=*) prefix="$value" ;;
    --config=*) config="$value" ;;
    --libdir=*) libdir="$value" ;;
    --version=*) version="$value" ;;
    --generator=*) generator="$value" ;;
    --cxx=*) cxx="$value" ;;
    --cxx-flags=*) cxx_flags="$value" ;;
    --linker-flags=*) linker_flags="$value" ;;
    *) echo "run_consumer.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

step() { echo "== $*"; }

rm -rf "$work"
mkdir -p "$work"

"$testserver" --port 0 --port-file "$work/port" >"$work/testserver.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true' EXIT
# The port file is written after the server listens; wait for its complete line.
for _ in $(seq 100); do
  [[ -s "$work/port" && "$(tail -c1 "$work/port")" == "" ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/testserver.log" >&2; exit 1; }
  sleep 0.1
done
[[ -s "$work/port" ]] || { echo "imgdl-testserver wrote no port in 10 s" >&2; exit 1; }
base_url="http://127.0.0.1:$(tr -d '[:space:]' <"$work/port")"
step "test server at $base_url"

# The consumer is built with the same compiler and flags as imgdl (a sanitizer build's archive needs them).
configure_args=(-DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$cxx_flags" -DCMAKE_EXE_LINKER_FLAGS="$linker_flags")
[[ -n "$generator" ]] && configure_args+=(-G "$generator")

# Runs a consumer program and checks the files it reports.
run_and_verify() {
  local exe="$1" out="$2"
  "$exe" "$base_url" "$out" >"$out.sha256"
  sha256sum --check --strict "$out.sha256"
}

case "$kind" in
  find_package)
    if [[ -z "$prefix" ]]; then
      prefix="$work/prefix"
      step "cmake --install $imgdl_build --prefix $prefix"
      # Only imgdl's components: the rest of the build (the CLI) need not be built for this test.
      for component in imgdl_Development imgdl_Runtime; do
        cmake --install "$imgdl_build" --prefix "$prefix" --component "$component" ${config:+--config "$config"}
      done
    else
      step "imgdl installed in $prefix"
    fi

    step "find_package(imgdl) consumer"
    cmake -S "$source_dir/tests/consumers/find_package" -B "$work/build" "${configure_args[@]}" \
      -DCMAKE_BUILD_TYPE="${config:-Release}" -DCMAKE_PREFIX_PATH="$prefix"
    # The package must come from the staged prefix, not from somewhere else on the system.
    grep -q "^imgdl_DIR:PATH=$prefix/" "$work/build/CMakeCache.txt" ||
      { echo "imgdl was not found in $prefix" >&2; grep imgdl_DIR "$work/build/CMakeCache.txt" >&2; exit 1; }
    cmake --build "$work/build" -j2 ${config:+--config "$config"}
    exe=$(find "$work/build" -name consumer -type f -perm -u+x | head -n1)
    run_and_verify "$exe" "$work/out-cmake"

    step "pkg-config --cflags --libs --static imgdl"
    export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
    pc_version=$(pkg-config --modversion imgdl)
    [[ "$pc_version" == "$version" ]] || { echo "imgdl.pc says $pc_version, project() says $version" >&2; exit 1; }
    # Debian's libcurl.pc lists libcurl's own static dependencies (nghttp2, ssh2, ldap, ...) whose -dev
    # packages libcurl4-openssl-dev does not pull in. Without them only the shared libcurl can be linked:
    # then a copy of libcurl.pc without its private fields stands in, and imgdl.pc is used unchanged.
    # shellcheck disable=SC2046 # the flags are words
    if ! echo 'int main() {}' | "$cxx" -x c++ - -o "$work/probe" $(pkg-config --static --libs libcurl) 2>/dev/null; then
      mkdir -p "$work/pc-shim"
      sed '/^Libs.private:/d; /^Requires.private:/d' "$(pkg-config --variable=pcfiledir libcurl)/libcurl.pc" \
        >"$work/pc-shim/libcurl.pc"
      PKG_CONFIG_PATH="$work/pc-shim:$PKG_CONFIG_PATH"
      echo "(libcurl's static dependencies are not installed: linking the shared libcurl)"
    fi
    pc_flags=$(pkg-config --cflags --libs --static imgdl)
    echo "$pc_flags"
    for flag in -limgdl -lcurl -lcrypto -pthread; do
      [[ " $pc_flags " == *" $flag "* ]] || { echo "pkg-config --static imgdl lacks $flag" >&2; exit 1; }
    done
    # shellcheck disable=SC2086 # the flags are words
    "$cxx" -std=c++20 $cxx_flags "-DIMGDL_EXPECTED_VERSION=\"$version\"" \
      "$source_dir/tests/consumers/find_package/main.cpp" -o "$work/consumer-pkgconfig" $linker_flags $pc_flags
    # A shared build's libimgdl.so is found through the staged prefix, as an installed one would be.
    LD_LIBRARY_PATH="$prefix/$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      run_and_verify "$work/consumer-pkgconfig" "$work/out-pkgconfig"
    ;;
  add_subdirectory)
    step "add_subdirectory(imgdl) consumer"
    # No CMAKE_BUILD_TYPE on purpose: the consumer checks that imgdl does not pick one for it.
    cmake -S "$source_dir/tests/consumers/add_subdirectory" -B "$work/build" "${configure_args[@]}" \
      -DIMGDL_SOURCE_DIR="$source_dir"
    cmake --build "$work/build" -j2 ${config:+--config "$config"}
    exe=$(find "$work/build" -name consumer -type f -perm -u+x | head -n1)
    run_and_verify "$exe" "$work/out"
    ;;
  *)
    echo "run_consumer.sh: unknown kind '$kind'" >&2
    exit 2
    ;;
esac
step "ok"
