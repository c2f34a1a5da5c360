#!/usr/bin/env bash
# CTest's package test (tests/package/CMakeLists.txt): builds imgdl's Debian packages from a build tree
# with cpack, checks their control fields and contents with dpkg-deb -I/-c, unpacks both into a scratch
# root with dpkg-deb -x (nothing is installed on the machine), runs the unpacked `imgdl --version`, reads
# its man page, sources its bash completion, and builds and runs the find_package and pkg-config consumers against the unpacked
# libimgdl-dev (tests/consumers/run_consumer.sh --prefix).
#
# Usage: package_test.sh --source=DIR --build=DIR --work=DIR --testserver=EXE --version=X.Y.Z
#          [--libdir=DIR] [--generator=G] [--cxx=CXX] [--cpack=CPACK]
set -euo pipefail

source_dir="" build="" work="" testserver="" version="" libdir="lib" generator="" cxx="c++" cpack="cpack"
for arg in "$@"; do
  value="${arg#*=}"
  case "$arg" in
    --source=*) source_dir="$value" ;;
    --build=*) build="$value" ;;
    --work=*) work="$value" ;;
    --testserver=*) testserver="$value" ;;
    --version=*) version="$value" ;;
    --libdir=*) libdir="$value" ;;
    --generator=*) generator="$value" ;;
    --cxx=*) cxx="$value" ;;
    --cpack=*) cpack="$value" ;;
    *) echo "package_test.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

step() { echo "== $*"; }
fail() { echo "package_test.sh: $*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work/debs" "$work/root"

step "cpack -G DEB"
"$cpack" -G DEB --config "$build/CPackConfig.cmake" -B "$work/debs" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log" >&2; fail "cpack failed"; }
arch=$(dpkg --print-architecture)
program_deb="$work/debs/imgdl_${version}_${arch}.deb"
dev_deb="$work/debs/libimgdl-dev_${version}_${arch}.deb"
for deb in "$program_deb" "$dev_deb"; do
  [[ -f "$deb" ]] || { ls -l "$work/debs" >&2; fail "no $(basename "$deb")"; }
done

field() { dpkg-deb -f "$1" "$2"; }
step "control fields"
dpkg-deb -I "$program_deb"
[[ "$(field "$program_deb" Package)" == imgdl && "$(field "$dev_deb" Package)" == libimgdl-dev ]] ||
  fail "the packages are not named imgdl and libimgdl-dev"
for deb in "$program_deb" "$dev_deb"; do
  [[ "$(field "$deb" Version)" == "$version" ]] || fail "$(basename "$deb") is not version $version"
done
# dpkg-shlibdeps found what the program links, by Debian's package names.
program_depends=$(field "$program_deb" Depends)
for package in libc6 libcurl4 libssl3 libstdc++6 libzstd1 zlib1g; do
  [[ ", $program_depends," == *", $package "* || ", $program_depends," == *", $package,"* ]] ||
    fail "imgdl does not depend on $package: $program_depends"
done
# A static libimgdl.a is linked with libcurl, libcrypto, zlib and libzstd: their -dev packages.
dev_depends=$(field "$dev_deb" Depends)
for package in libcurl4-openssl-dev libssl-dev zlib1g-dev libzstd-dev; do
  [[ "$dev_depends" == *"$package"* ]] || fail "libimgdl-dev does not depend on $package: $dev_depends"
done

step "contents"
dpkg-deb -c "$program_deb" | awk '{print $NF}' >"$work/program.files"
dpkg-deb -c "$dev_deb" | awk '{print $NF}' >"$work/dev.files"
cat "$work/program.files"
for path in ./usr/bin/imgdl ./usr/share/man/man1/imgdl.1.gz ./usr/share/bash-completion/completions/imgdl \
  ./usr/share/zsh/vendor-completions/_imgdl ./usr/share/doc/imgdl/copyright ./usr/share/doc/imgdl/changelog.gz; do
  grep -qxF "$path" "$work/program.files" || fail "imgdl lacks $path"
done
for path in ./usr/include/imgdl/downloader.hpp "./usr/$libdir/libimgdl.a" "./usr/$libdir/cmake/imgdl/imgdlConfig.cmake" \
  "./usr/$libdir/pkgconfig/imgdl.pc" ./usr/share/doc/libimgdl-dev/library.md ./usr/share/doc/libimgdl-dev/copyright; do
  grep -qxF "$path" "$work/dev.files" || fail "libimgdl-dev lacks $path"
done
# The program is all the imgdl package holds of the library; the headers are all in libimgdl-dev.
! grep -q "include/" "$work/program.files" || fail "imgdl carries headers"

step "dpkg-deb -x into $work/root"
dpkg-deb -x "$program_deb" "$work/root"
dpkg-deb -x "$dev_deb" "$work/root"
out=$("$work/root/usr/bin/imgdl" --version)
echo "$out"
[[ "$out" =~ ^imgdl\ ${version//./\\.}\ \(libcurl\ [0-9] ]] || fail "the unpacked imgdl --version says: $out"
zcat "$work/root/usr/share/man/man1/imgdl.1.gz" | grep -q "^\.TH IMGDL 1 .*imgdl $version" ||
  fail "the man page's title line does not name imgdl $version"

# Where bash-completion looks for it, the script registers its function for `imgdl`.
bash --norc --noprofile -c 'source "$1" && complete -p imgdl' bash \
  "$work/root/usr/share/bash-completion/completions/imgdl" | grep -q -- "-F _imgdl imgdl" ||
  fail "the packaged bash completion does not register _imgdl for imgdl"

step "find_package and pkg-config consumers against $work/root/usr"
bash "$source_dir/tests/consumers/run_consumer.sh" find_package "--source=$source_dir" "--work=$work/consumer" \
  "--testserver=$testserver" "--prefix=$work/root/usr" "--libdir=$libdir" "--version=$version" \
  "--generator=$generator" "--cxx=$cxx"
step "ok"
