# cmake --install: public headers, libraries, programs, the CMake package
# (find_package(percore CONFIG)), percore.pc, and CPack's .deb.
include(CMakePackageConfigHelpers)

set(PERCORE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/percore)

install(TARGETS percore_base percore_proto percore_discovery percore_client_proxy
                percore_server_io percore_all
        EXPORT percoreTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Public headers only: detail/ is private (no public header includes it; the
# installed-headers test compiles each one alone).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/percore/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/percore
        FILES_MATCHING PATTERN "*.h"
        PATTERN "detail" EXCLUDE)
# Generated headers that are part of the API: the version, and the example
# services' messages (to call percore-server); rpc_meta.pb.h stays private.
install(FILES ${PROJECT_BINARY_DIR}/percore/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/percore)
install(FILES ${PROJECT_BINARY_DIR}/percore/proto/echo.pb.h
              ${PROJECT_BINARY_DIR}/percore/proto/prime.pb.h
              ${PROJECT_BINARY_DIR}/percore/proto/health.pb.h
              ${PROJECT_SOURCE_DIR}/percore/proto/echo.proto
              ${PROJECT_SOURCE_DIR}/percore/proto/prime.proto
              ${PROJECT_SOURCE_DIR}/percore/proto/health.proto
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/percore/proto)

set(percore_programs percore-server percore-client percore-cli percore-gateway)
if(TARGET percore-bench)
  list(APPEND percore_programs percore-bench)
endif()
install(TARGETS ${percore_programs} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(EXPORT percoreTargets NAMESPACE percore:: DESTINATION ${PERCORE_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/percoreConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/percoreConfig.cmake
                              INSTALL_DESTINATION ${PERCORE_CMAKE_DIR}
                              PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
# 0.x: a minor version may break the API, so only the same minor matches.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/percoreConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/percoreConfig.cmake
              ${PROJECT_BINARY_DIR}/percoreConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/percoreAddProto.cmake
              ${PROJECT_SOURCE_DIR}/cmake/percoreZooKeeper.cmake
        DESTINATION ${PERCORE_CMAKE_DIR})

# pkg-config: with static libraries (the default) every dependency is in Libs
# and Requires, so that `pkg-config --cflags --libs percore` links; with
# shared ones they are private.
if(BUILD_SHARED_LIBS)
  set(PERCORE_PC_REQUIRES "Requires: protobuf\nRequires.private: spdlog snappy zlib prometheus-cpp-core libssl libcrypto")
  set(PERCORE_PC_LIBS_PRIVATE "-lzookeeper_mt")
  set(PERCORE_PC_LIBS_DEPS "")
else()
  set(PERCORE_PC_REQUIRES "Requires: protobuf prometheus-cpp-core spdlog snappy zlib libssl libcrypto")
  set(PERCORE_PC_LIBS_PRIVATE "")
  set(PERCORE_PC_LIBS_DEPS " -lzookeeper_mt -pthread")
endif()
file(RELATIVE_PATH PERCORE_PC_PREFIX_FROM_PCFILEDIR /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" PERCORE_PC_PREFIX_FROM_PCFILEDIR "${PERCORE_PC_PREFIX_FROM_PCFILEDIR}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/percore.pc.in ${PROJECT_BINARY_DIR}/percore.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/percore.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# cpack -G DEB (in the build directory): percore_VERSION_amd64.deb.
set(CPACK_PACKAGE_NAME percore)
set(CPACK_PACKAGE_VENDOR "percore")
set(CPACK_PACKAGE_CONTACT "percore maintainers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "RPC middleware for protobuf services over brpc's baidu_std, with ZooKeeper discovery")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
# The programs' runtime libraries come from dpkg-shlibdeps; building against
# the headers and static libraries needs the -dev packages of what they use.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libprotobuf-dev, protobuf-compiler, libspdlog-dev, libzookeeper-mt-dev, libsnappy-dev, zlib1g-dev, libssl-dev")
include(CPack)
