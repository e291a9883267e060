#!/usr/bin/env bash
# Builds percore's .deb with CPack from a build directory, unpacks it into a
# scratch root (dpkg -x) and checks its name, version, dependencies and
# layout: public headers under usr/include/percore (no detail/), the
# libraries, the CMake package, percore.pc and the programs.
#   check_deb.sh BUILD_DIR VERSION
set -euo pipefail
build=$(cd "$1" && pwd)
version=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "check_deb: FAILED: $*" >&2; exit 1; }

(cd "$scratch" && cpack --config "$build/CPackConfig.cmake" -G DEB -B "$scratch/out" >/dev/null) ||
  fail "cpack -G DEB"
deb=$(find "$scratch/out" -maxdepth 1 -name 'percore_*.deb' | head -1)
[ -n "$deb" ] || fail "no percore_*.deb in $(ls "$scratch/out")"
echo "check_deb: $(basename "$deb"), $(du -k "$deb" | cut -f1) KiB"

[ "$(dpkg-deb -f "$deb" Package)" = percore ] || fail "Package: $(dpkg-deb -f "$deb" Package)"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "Version: $(dpkg-deb -f "$deb" Version)"
depends=$(dpkg-deb -f "$deb" Depends)
echo "check_deb: Depends: $depends"
for package in libprotobuf-dev libzookeeper-mt-dev libspdlog-dev libsnappy-dev zlib1g-dev libssl-dev \
  protobuf-compiler libstdc++6; do
  [[ "$depends" == *"$package"* ]] || fail "Depends lacks $package"
done

root=$scratch/root
dpkg -x "$deb" "$root"
libdir=$(cd "$root/usr" && find . -name 'libpercore_client_proxy.*' -printf '%h\n' | head -1)
[ -n "$libdir" ] || fail "no libpercore_client_proxy in usr/"
for path in include/percore/client_proxy/channel.h include/percore/client_proxy/controller.h \
  include/percore/server_io/server.h include/percore/server_io/server_controller.h \
  include/percore/discovery/naming_source.h include/percore/proto/error_code.h \
  include/percore/version.h bin/percore-server bin/percore-client bin/percore-cli \
  "$libdir/cmake/percore/percoreConfig.cmake" "$libdir/cmake/percore/percoreConfigVersion.cmake" \
  "$libdir/cmake/percore/percoreAddProto.cmake" "$libdir/pkgconfig/percore.pc"; do
  [ -e "$root/usr/$path" ] || fail "usr/$path missing"
done
for name in base proto discovery client_proxy server_io; do
  ls "$root/usr/$libdir"/libpercore_$name.* >/dev/null 2>&1 || fail "libpercore_$name missing"
done
if find "$root" -path '*detail*' | grep -q .; then
  fail "private detail/ headers packaged"
fi
# The pkg-config file is relocatable: it finds the root it was unpacked in.
prefix=$(PKG_CONFIG_PATH="$root/usr/$libdir/pkgconfig" pkg-config --variable=includedir percore)
[ "$(cd "$prefix" && pwd)" = "$root/usr/include" ] || fail "percore.pc includedir is $prefix"
echo "check_deb: layout: $(cd "$root/usr" && find . -type f | wc -l) files under usr/" \
  "(include/percore, $libdir, bin)"
echo "check_deb: passed"
