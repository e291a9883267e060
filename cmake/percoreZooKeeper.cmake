# Finds the ZooKeeper C client (Debian: libzookeeper-mt-dev), which ships no
# CMake package, and defines the imported target percore::zookeeper_mt that
# percore::discovery links. Used by percore's own build and by the installed
# percoreConfig.cmake, so that users never name the library themselves.
if(NOT TARGET percore::zookeeper_mt)
  find_library(PERCORE_ZOOKEEPER_MT zookeeper_mt)
  find_path(PERCORE_ZOOKEEPER_INCLUDE zookeeper/zookeeper.h)
  if(NOT PERCORE_ZOOKEEPER_MT OR NOT PERCORE_ZOOKEEPER_INCLUDE)
    message(FATAL_ERROR "percore needs the ZooKeeper C client (Debian: libzookeeper-mt-dev); "
                        "library: ${PERCORE_ZOOKEEPER_MT}, header: ${PERCORE_ZOOKEEPER_INCLUDE}")
  endif()
  add_library(percore::zookeeper_mt UNKNOWN IMPORTED GLOBAL)
  set_target_properties(percore::zookeeper_mt PROPERTIES
    IMPORTED_LOCATION "${PERCORE_ZOOKEEPER_MT}"
    INTERFACE_INCLUDE_DIRECTORIES "${PERCORE_ZOOKEEPER_INCLUDE}")
endif()
