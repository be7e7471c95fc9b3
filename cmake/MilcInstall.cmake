# cmake/MilcInstall.cmake -- what `make install` puts where.
#
#   bin/milc, bin/mil-run, ...                     milc_install_tool(<target>) next to its
#                                                  add_executable (a new tool: one line + man/<tool>.1)
#   lib/libmil<x>.a, lib/libmil<x>.so.<SOVERSION>  milc_install_library() per library
#   include/milc/<dir>/<header>                    the public header + what it includes
#   lib/pkgconfig/milc-<name>.pc                   pkg-config, relocatable (${pcfiledir})
#   lib/cmake/milc/                                find_package(milc): milc::<name> (shared),
#                                                  milc::<name>_static
#   share/man/man1/                                man/*.1
#
# The installed include directory mirrors the repository root, so the headers'
# own includes (`#include "ir/vocab.h"`) and a user's (`#include "ir/ir.h"`)
# are the same in the source tree and in the install: Cflags are
# -I<prefix>/include/milc.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MILC_SOVERSION 0)  # the ABI version: bump it when a public struct or signature changes
set(MILC_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/milc)
set(MILC_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/milc)
set(MILC_PCDIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# .pc files name the prefix relative to themselves, so `cmake --install
# --prefix P` (and `make install PREFIX=P`) needs no reconfiguration.
if(IS_ABSOLUTE ${CMAKE_INSTALL_LIBDIR})
  set(MILC_PC_PREFIX ${CMAKE_INSTALL_PREFIX})
else()
  file(RELATIVE_PATH MILC_PC_PREFIX /root/${MILC_PCDIR} /root)
  string(REGEX REPLACE "/$" "" MILC_PC_PREFIX "${MILC_PC_PREFIX}")
  set(MILC_PC_PREFIX "\${pcfiledir}/${MILC_PC_PREFIX}")
endif()
# The static libraries' objects also make the shared ones (-fPIC); without
# semantic interposition the compiler still inlines within a library.
include(CheckCCompilerFlag)
check_c_compiler_flag(-fno-semantic-interposition MILC_HAVE_NO_SEMANTIC_INTERPOSITION)
set_property(GLOBAL PROPERTY MILC_LIBRARIES "")

# milc_install_library(<static target> NAME <n> DESCRIPTION "<text>"
#                      HEADERS <files, relative to the source root>
#                      [REQUIRES <milc targets its public header includes>]
#                      [REQUIRES_PRIVATE <milc targets or pkg-config modules it uses>]
#                      [LIBS_PRIVATE <system libraries, without -l>])
# Adds <target>_shared (the same objects as a shared library: libmil<x>.so.<SOVERSION>,
# exporting only mil_* symbols), install rules for both, the headers, and
# milc-<n>.pc.  Call it after target_link_libraries(<target> ...).  Every milc
# library the target links must appear in REQUIRES or REQUIRES_PRIVATE (that is
# what the .pc files and the shared library's dependencies come from).
function(milc_install_library lib)
  cmake_parse_arguments(A "" "NAME;DESCRIPTION" "HEADERS;REQUIRES;REQUIRES_PRIVATE;LIBS_PRIVATE" ${ARGN})
  if(MILC_FUZZ)
    return()  # libFuzzer builds have nothing to install
  endif()
  get_property(milc_libs GLOBAL PROPERTY MILC_LIBRARIES)
  set(pc_req "")
  set(pc_req_priv "")
  set(pc_modules "")
  foreach(r IN LISTS A_REQUIRES)
    get_target_property(n ${r} MILC_NAME)
    list(APPEND pc_req milc-${n})
  endforeach()
  foreach(r IN LISTS A_REQUIRES_PRIVATE)
    if(r IN_LIST milc_libs)
      get_target_property(n ${r} MILC_NAME)
      list(APPEND pc_req_priv milc-${n})
    else()
      list(APPEND pc_req_priv ${r})
      list(APPEND pc_modules ${r})
    endif()
  endforeach()

  # The objects go into both libraries.
  set_target_properties(${lib} PROPERTIES POSITION_INDEPENDENT_CODE ON MILC_NAME ${A_NAME}
                        EXPORT_NAME ${A_NAME}_static)
  if(MILC_HAVE_NO_SEMANTIC_INTERPOSITION)
    target_compile_options(${lib} PRIVATE -fno-semantic-interposition)
  endif()
  add_library(${lib}_shared SHARED $<TARGET_OBJECTS:${lib}>)
  add_dependencies(${lib}_shared ${lib})
  set_target_properties(${lib}_shared PROPERTIES OUTPUT_NAME ${lib} EXPORT_NAME ${A_NAME} MILC_NAME ${A_NAME}
                        VERSION ${PROJECT_VERSION} SOVERSION ${MILC_SOVERSION}
                        # its milc dependencies are found next to it, also by the
                        # linker of a program that links it from any prefix (the
                        # build tree keeps the shared libraries together in lib/)
                        INSTALL_RPATH "$ORIGIN" BUILD_WITH_INSTALL_RPATH ON
                        LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/lib)
  target_link_options(${lib}_shared PRIVATE -Wl,--version-script=${PROJECT_SOURCE_DIR}/cmake/milc.map
                      -Wl,--no-undefined)
  target_include_directories(${lib}_shared INTERFACE $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>)

  # Link dependencies: milc libraries by their shared twins, the rest as the
  # build found them; the installed static target names plain libraries.
  get_target_property(deps ${lib} LINK_LIBRARIES)
  set(static_iface "")
  foreach(d IN LISTS deps)
    if(d IN_LIST milc_libs)
      if(d IN_LIST A_REQUIRES)
        target_link_libraries(${lib}_shared PUBLIC ${d}_shared)
      elseif(d IN_LIST A_REQUIRES_PRIVATE)
        target_link_libraries(${lib}_shared PRIVATE ${d}_shared)
      else()
        message(FATAL_ERROR "${lib} links ${d}: list it in REQUIRES or REQUIRES_PRIVATE of milc_install_library")
      endif()
      list(APPEND static_iface ${d})
    elseif(d)
      target_link_libraries(${lib}_shared PRIVATE ${d})
      list(APPEND static_iface $<BUILD_INTERFACE:${d}>)
    endif()
  endforeach()
  set(plain ${A_LIBS_PRIVATE})
  if(pc_modules)
    pkg_check_modules(MILC_PC_${A_NAME} REQUIRED ${pc_modules})
    list(PREPEND plain ${MILC_PC_${A_NAME}_LIBRARIES})
  endif()
  foreach(p IN LISTS plain)
    list(APPEND static_iface $<INSTALL_INTERFACE:${p}>)
  endforeach()
  set_target_properties(${lib} PROPERTIES INTERFACE_LINK_LIBRARIES "${static_iface}")
  # the source root is the include path in the build tree only
  get_target_property(incs ${lib} INTERFACE_INCLUDE_DIRECTORIES)
  set(binc "")
  foreach(i IN LISTS incs)
    if(i)
      list(APPEND binc $<BUILD_INTERFACE:${i}>)
    endif()
  endforeach()
  set_target_properties(${lib} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${binc}")

  install(TARGETS ${lib} ${lib}_shared EXPORT milcTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          INCLUDES DESTINATION ${MILC_INCLUDEDIR})
  foreach(h IN LISTS A_HEADERS)
    get_filename_component(hdir ${h} DIRECTORY)
    install(FILES ${PROJECT_SOURCE_DIR}/${h} DESTINATION ${MILC_INCLUDEDIR}/${hdir})
  endforeach()

  list(JOIN pc_req " " PC_REQUIRES)
  list(JOIN pc_req_priv " " PC_REQUIRES_PRIVATE)
  list(TRANSFORM A_LIBS_PRIVATE PREPEND -l OUTPUT_VARIABLE libs_priv)
  list(JOIN libs_priv " " PC_LIBS_PRIVATE)
  set(PC_NAME milc-${A_NAME})
  set(PC_DESCRIPTION "${A_DESCRIPTION}")
  set(PC_LIB ${lib})
  configure_file(${PROJECT_SOURCE_DIR}/cmake/milc.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/milc-${A_NAME}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/milc-${A_NAME}.pc DESTINATION ${MILC_PCDIR})

  set_property(GLOBAL APPEND PROPERTY MILC_LIBRARIES ${lib})
endfunction()

# milc_install_tool(<executable target>): bin/<target> (imported as milc::<target>, e.g.
# to run milc at a user's build time), with man/<target>.1 when it exists.
function(milc_install_tool exe)
  if(MILC_FUZZ)
    return()
  endif()
  install(TARGETS ${exe} EXPORT milcTargets RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  if(EXISTS ${PROJECT_SOURCE_DIR}/man/${exe}.1)
    install(FILES ${PROJECT_SOURCE_DIR}/man/${exe}.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
  endif()
endfunction()

# After every library: the CMake package (call once, at the end of the top-level file).
function(milc_install_package)
  if(MILC_FUZZ)
    return()
  endif()
  install(EXPORT milcTargets NAMESPACE milc:: DESTINATION ${MILC_CMAKEDIR})
  configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/milcConfig.cmake.in
                                ${PROJECT_BINARY_DIR}/cmake/milcConfig.cmake
                                INSTALL_DESTINATION ${MILC_CMAKEDIR} PATH_VARS MILC_INCLUDEDIR)
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/milcConfigVersion.cmake
                                   COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/cmake/milcConfig.cmake ${PROJECT_BINARY_DIR}/cmake/milcConfigVersion.cmake
          DESTINATION ${MILC_CMAKEDIR})
endfunction()
