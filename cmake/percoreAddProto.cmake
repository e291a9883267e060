# percore_add_proto(<target> FILES <a.proto> [<b.proto> ...])
#
# Runs protoc (protobuf::protoc) on the .proto files, adds the generated
# sources to <target>, adds the directory of the generated headers to its
# include path (PUBLIC: targets linking <target> see it too) and links it to
# protobuf::libprotobuf. Paths are relative to the calling CMakeLists.txt's
# directory (or absolute); each file's directory is on protoc's import path,
# so `import "b.proto";` between the files works, and the headers are
# included by file name: `#include "a.pb.h"`.
#
# percore's Server and Channel serve and call protobuf's generic services, so
# a file that declares a `service` must set `option cc_generic_services =
# true;` (protoc has no flag for it); configuring fails with that message
# when it does not.
#
# Output: <build dir of the caller>/<target>_proto/<name>.pb.{h,cc}.
function(percore_add_proto target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "FILES")
  if(NOT TARGET ${target})
    message(FATAL_ERROR "percore_add_proto: ${target} is not a target; create it first "
                        "(add_executable or add_library)")
  endif()
  if(NOT arg_FILES OR arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "percore_add_proto: usage: percore_add_proto(<target> FILES <a.proto> ...)")
  endif()
  # Imported targets are seen only below the directory that found them: a
  # caller beside percore (a subproject) may not see percore's.
  if(NOT TARGET protobuf::protoc OR NOT TARGET protobuf::libprotobuf)
    find_package(Protobuf REQUIRED)
  endif()
  if(NOT TARGET protobuf::protoc)
    message(FATAL_ERROR "percore_add_proto: protoc not found (Debian: protobuf-compiler)")
  endif()

  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_proto)
  file(MAKE_DIRECTORY ${out_dir})
  set(import_dirs)
  set(protos)
  foreach(file IN LISTS arg_FILES)
    get_filename_component(proto ${file} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    if(NOT EXISTS ${proto})
      message(FATAL_ERROR "percore_add_proto: ${proto} does not exist")
    endif()
    file(READ ${proto} text)
    # A `service` block at the start of a line, outside comments well enough
    # for a check that only prints advice.
    if(text MATCHES "(^|\n)[ \t]*service[ \t]+[A-Za-z_]" AND
       NOT text MATCHES "cc_generic_services[ \t]*=[ \t]*true")
      message(FATAL_ERROR "percore_add_proto: ${proto} declares a service but not "
                          "`option cc_generic_services = true;`, which percore's Server and "
                          "Channel need")
    endif()
    get_filename_component(dir ${proto} DIRECTORY)
    list(APPEND import_dirs ${dir})
    list(APPEND protos ${proto})
  endforeach()
  list(REMOVE_DUPLICATES import_dirs)

  set(generated)
  foreach(proto IN LISTS protos)
    get_filename_component(dir ${proto} DIRECTORY)
    get_filename_component(name ${proto} NAME_WE)
    set(header ${out_dir}/${name}.pb.h)
    set(source ${out_dir}/${name}.pb.cc)
    # The file's own directory first, so that the output is named after the
    # file and not after a longer path under another import directory.
    set(import_flags -I ${dir})
    foreach(other IN LISTS import_dirs)
      if(NOT other STREQUAL dir)
        list(APPEND import_flags -I ${other})
      endif()
    endforeach()
    add_custom_command(
      OUTPUT ${header} ${source}
      COMMAND protobuf::protoc --cpp_out=${out_dir} ${import_flags} ${proto}
      DEPENDS ${proto} ${protos} protobuf::protoc
      COMMENT "protoc ${name}.proto (percore_add_proto ${target})"
      VERBATIM)
    list(APPEND generated ${source} ${header})
  endforeach()
  target_sources(${target} PRIVATE ${generated})
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${out_dir}>)
  target_link_libraries(${target} PUBLIC protobuf::libprotobuf)
endfunction()
