#!/usr/bin/env bash
# percore as a subproject: a scratch project takes percore's source tree with
# FetchContent (OVERRIDE_FIND_PACKAGE, so the consumer's own
# find_package(percore) is satisfied by it) and adds the consumer project.
# Configuring checks the protoc rules and targets of a subproject build; the
# build then generates percore's protos and the consumer's, and compiles the
# consumer's sources (linking is what check_installed.sh covers).
#   check_subproject.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source_root=$(cd "$here/../.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "check_subproject: FAILED: $*" >&2; exit 1; }

mkdir "$scratch/outer"
cat >"$scratch/outer/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.24)
project(outer LANGUAGES CXX)
include(FetchContent)
FetchContent_Declare(percore SOURCE_DIR "$source_root" OVERRIDE_FIND_PACKAGE)
FetchContent_MakeAvailable(percore)
add_subdirectory("$here" consumer)
CMAKE
cmake -S "$scratch/outer" -B "$scratch/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  >"$scratch/configure.log" 2>&1 || { cat "$scratch/configure.log"; fail "configure"; }
grep -q "Build files have been written" "$scratch/configure.log" || fail "configure"
# A subproject builds no tests or benchmarks and installs nothing by default.
if grep -q "percore_bench_support\|server_integration_tests" "$scratch/build/build.ninja"; then
  fail "the subproject builds percore's tests or benchmarks"
fi
cd "$scratch/build"
ninja _deps/percore-build/percore/proto/rpc_meta.pb.cc greeter_proto \
  consumer/CMakeFiles/greeter_server.dir/greeter_server.cc.o \
  consumer/CMakeFiles/greeter_client.dir/greeter_client.cc.o >/dev/null || fail "build"
echo "check_subproject: passed (FetchContent + find_package(percore) in the consumer)"
