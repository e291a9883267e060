#!/usr/bin/env bash
# Installs percore from a build directory into a scratch prefix and uses it
# as a user would, with nothing from percore's source tree on any path:
#   1. every installed header compiles alone (no detail/ or generated header
#      that is not installed);
#   2. the consumer project (this folder) configures with find_package,
#      builds (percore_add_proto) and its client calls its server;
#   3. a one-file client built with `pkg-config --cflags --libs percore`
#      calls the installed percore-server;
#   4. every installed program answers --version with the project's version.
#   check_installed.sh BUILD_DIR VERSION
set -euo pipefail
build=$(cd "$1" && pwd)
version=$2
here=$(cd "$(dirname "$0")" && pwd)
source_root=$(cd "$here/../.." && pwd)
scratch=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT
fail() { echo "check_installed: FAILED: $*" >&2; exit 1; }

prefix=$scratch/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
[ -f "$prefix/include/percore/client_proxy/channel.h" ] || fail "no include/percore/client_proxy/channel.h"
if find "$prefix/include" -path '*detail*' | grep -q .; then
  fail "detail/ headers installed: $(find "$prefix/include" -path '*detail*' | head -3)"
fi

# 1. Each header alone, with only the prefix and protobuf on the path.
protobuf_flags=$(pkg-config --cflags protobuf)
headers=$(cd "$prefix/include" && find percore -name '*.h' | sort)
count=0
for header in $headers; do
  echo "#include <$header>" > "$scratch/one.cc"
  # shellcheck disable=SC2086
  c++ -std=c++20 -fsyntax-only -Wall -Wextra -Werror -I "$prefix/include" $protobuf_flags \
    "$scratch/one.cc" || fail "$header does not compile alone"
  count=$((count + 1))
done
echo "check_installed: $count installed headers each compile alone"

# 2. The consumer project against the installed package.
cmake -S "$here" -B "$scratch/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
cmake --build "$scratch/consumer" >/dev/null
if grep -F -e "$source_root/percore" -e "$build" "$scratch/consumer/compile_commands.json" \
  "$scratch/consumer/build.ninja" "$scratch/consumer/Makefile" 2>/dev/null | grep -q .; then
  fail "the consumer's build names a path inside percore's tree"
fi
echo "check_installed: consumer project ($(grep -cv '^\s*\(#\|$\)' "$here/CMakeLists.txt") lines of CMake) built"

# start_server OUT COMMAND...: starts a server in the background (its pid in
# $server_pid, stopped by the trap too) and waits (at most 10 s) for the
# first line of its stdout, which names its port; sets $port.
start_server() {
  local out=$1
  shift
  "$@" >"$out" 2>"$out.err" &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 100); do
    if [ -s "$out" ]; then
      port=$(grep -oE '[0-9]+$|:[0-9]+ pid' "$out" | head -1 | tr -dc '0-9')
      return 0
    fi
    sleep 0.1
  done
  cat "$out.err" >&2
  fail "$* did not start"
}

# stop_server: SIGTERM, then the server must exit 0 within 10 s.
stop_server() {
  kill -TERM "$server_pid"
  for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  wait "$server_pid" || fail "server $server_pid exited $? after SIGTERM"
}

start_server "$scratch/greeter.out" "$scratch/consumer/greeter_server"
"$scratch/consumer/greeter_client" "list://127.0.0.1:$port" 200 ||
  fail "the consumer's client did not get every answer"
stop_server

# 3. One file and pkg-config, against the installed percore-server.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
[ "$(pkg-config --modversion percore)" = "$version" ] || fail "pkg-config --modversion percore"
# shellcheck disable=SC2046
c++ -std=c++20 -O1 -o "$scratch/pkg_config_client" "$here/pkg_config_client.cc" \
  $(pkg-config --cflags --libs percore) || fail "pkg-config --cflags --libs percore does not link"
start_server "$scratch/server.out" "$prefix/bin/percore-server" --listen 127.0.0.1:0
[ "$("$scratch/pkg_config_client" "list://127.0.0.1:$port" "hello")" = "hello" ] ||
  fail "the pkg-config client did not get its echo"
stop_server
echo "check_installed: a one-file client built with pkg-config called the installed percore-server"

# 4. --version.
for program in "$prefix"/bin/*; do
  out=$("$program" --version)
  [ "$out" = "$(basename "$program") $version" ] || fail "$program --version printed '$out'"
done
echo "check_installed: $(ls "$prefix/bin" | wc -l) programs print '<name> $version'"
echo "check_installed: passed"
