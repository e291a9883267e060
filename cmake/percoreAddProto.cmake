# percore_add_proto(<target> FILES <a.proto> [<b.proto> ...] [IMPORT_DIRS <dir> ...])
#
# Runs protoc (protobuf::protoc) on the .proto files, adds the generated
# sources to <target>, adds the directory of the generated headers to its
# include path (PUBLIC: targets linking <target> see it too) and links it to
# protobuf::libprotobuf and percore::proto.
#
# - FILES: relative to the calling CMakeLists.txt's directory, or absolute.
# - Names: the files' deepest common folder is the root. Files in one folder
#   are imported and included by file name (`import "b.proto";`,
#   `#include "a.pb.h"`); with protos/a.proto and protos/common/b.proto, a
#   imports "common/b.proto" and includes "common/b.pb.h". So two files of
#   one name in different folders stay apart.
# - Import path: the root, then IMPORT_DIRS (other roots, e.g. of another
#   target's protos: link that target for its generated headers), then
#   percore's own protos (`import "percore/proto/echo.proto";`) and protobuf's
#   (`google/protobuf/...`).
#
# percore's Server and Channel serve and call protobuf's generic services, so
# a file that declares a `service` must set `option cc_generic_services =
# true;` (protoc has no flag for it); configuring fails with that message
# when it does not.
#
# Output: <build dir of the caller>/<target>_proto/<path under the root>.pb.{h,cc}.
function(percore_add_proto target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "FILES;IMPORT_DIRS")
  if(NOT TARGET ${target})
    message(FATAL_ERROR "percore_add_proto: ${target} is not a target; create it first "
                        "(add_executable or add_library)")
  endif()
  if(NOT arg_FILES OR arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "percore_add_proto: usage: percore_add_proto(<target> FILES <a.proto> ... "
                        "[IMPORT_DIRS <dir> ...])")
  endif()
  # Imported targets are seen only below the directory that found them: a
  # caller beside percore (a subproject) may not see percore's.
  if(NOT TARGET protobuf::protoc OR NOT TARGET protobuf::libprotobuf)
    find_package(Protobuf REQUIRED)
  endif()
  if(NOT TARGET protobuf::protoc)
    message(FATAL_ERROR "percore_add_proto: protoc not found (Debian: protobuf-compiler)")
  endif()

  # The absolute files, checked, and their deepest common folder.
  set(protos)
  set(root)
  foreach(file IN LISTS arg_FILES)
    get_filename_component(proto ${file} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    if(NOT EXISTS ${proto} OR IS_DIRECTORY ${proto})
      message(FATAL_ERROR "percore_add_proto: ${proto} is not a file")
    endif()
    file(READ ${proto} text)
    # Comments out, so that a commented-out option does not count.
    string(REGEX REPLACE "//[^\n]*" "" text "${text}")
    if(text MATCHES "(^|\n)[ \t]*service[ \t]+[A-Za-z_]" AND
       NOT text MATCHES "cc_generic_services[ \t]*=[ \t]*true")
      message(FATAL_ERROR "percore_add_proto: ${proto} declares a service but not "
                          "`option cc_generic_services = true;`, which percore's Server and "
                          "Channel need")
    endif()
    get_filename_component(dir ${proto} DIRECTORY)
    if(NOT root)
      set(root ${dir})
    endif()
    while(NOT root STREQUAL "/")
      string(FIND "${dir}/" "${root}/" at)
      if(at EQUAL 0)
        break()
      endif()
      get_filename_component(root ${root} DIRECTORY)
    endwhile()
    list(APPEND protos ${proto})
  endforeach()

  set(import_flags -I ${root})
  foreach(dir IN LISTS arg_IMPORT_DIRS)
    get_filename_component(dir ${dir} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND import_flags -I ${dir})
  endforeach()
  get_property(percore_protos GLOBAL PROPERTY PERCORE_PROTO_IMPORT_DIR)
  if(percore_protos)
    list(APPEND import_flags -I ${percore_protos})
  endif()

  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_proto)
  set(generated)
  foreach(proto IN LISTS protos)
    file(RELATIVE_PATH relative ${root} ${proto})
    # Everything before the last ".proto": my.v1.types.proto -> my.v1.types.
    string(REGEX REPLACE "\\.proto$" "" stem ${relative})
    set(header ${out_dir}/${stem}.pb.h)
    set(source ${out_dir}/${stem}.pb.cc)
    add_custom_command(
      OUTPUT ${header} ${source}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
      COMMAND protobuf::protoc --cpp_out=${out_dir} ${import_flags} ${proto}
      DEPENDS ${protos} protobuf::protoc
      COMMENT "protoc ${relative} (percore_add_proto ${target})"
      VERBATIM)
    list(APPEND generated ${source} ${header})
  endforeach()
  target_sources(${target} PRIVATE ${generated})
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${out_dir}>)
  target_link_libraries(${target} PUBLIC protobuf::libprotobuf)
  # For files that import percore's protos: their headers and definitions.
  if(TARGET percore::proto)
    target_link_libraries(${target} PUBLIC percore::proto)
  endif()
endfunction()
