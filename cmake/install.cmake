# What `cmake --install build [--prefix P]` puts where (GNUInstallDirs):
# libcorio.so and libcorio.a, libcorio_lua.a, the public headers, the corio
# executable and its man page, the Lua module, corio.pc, corio-lua.pc and
# the CMake package (find_package(corio): corio::corio, corio::lua and
# corio::static).

# Where plain lua5.4 looks for C modules: lib/lua/5.4 under its prefix
# (/usr/local/lib/lua/5.4 is the first entry of Debian's package.cpath and
# of stock Lua's).  Relative to the prefix unless absolute; a string, not a
# PATH, so that a relative -D value stays relative.
string(REGEX MATCH "^[0-9]+\\.[0-9]+" CORIO_LUA_VERSION "${LUA_VERSION}")
set(CORIO_INSTALL_LUA_CMODDIR "lib/lua/${CORIO_LUA_VERSION}" CACHE STRING
  "Where the Lua module corio.so is installed (relative to the prefix, or absolute)")

install(TARGETS corio_module LIBRARY DESTINATION ${CORIO_INSTALL_LUA_CMODDIR})
if(CORIO_INSTALL_MODULE_ONLY)
  return() # luarocks: the rock is the module
endif()

install(TARGETS corio_shared corio_static corio_lua EXPORT corioTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS corio RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/runtime/include/corio.h
              ${PROJECT_SOURCE_DIR}/bindings/lua/include/corio_lua.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/include/corio
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(FILES ${PROJECT_SOURCE_DIR}/docs/corio.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# corio.pc finds its prefix from where it lies (${pcfiledir}), so that
# `cmake --install --prefix P` needs no reconfiguring.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(CORIO_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(CORIO_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH up "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" up "${up}")
  set(CORIO_PC_PREFIX "\${pcfiledir}/${up}")
  set(CORIO_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(CORIO_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(CORIO_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
# corio-lua.pc: libcorio_lua.a for hosts that embed Lua, before -lcorio.
foreach(pc IN ITEMS corio corio-lua)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${pc}.pc.in ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()

include(CMakePackageConfigHelpers)
set(CORIO_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/corio)
install(EXPORT corioTargets NAMESPACE corio:: DESTINATION ${CORIO_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/corioConfig.cmake.in
  ${PROJECT_BINARY_DIR}/corioConfig.cmake INSTALL_DESTINATION ${CORIO_CMAKE_DIR})
# 0.x: a new minor version may break the API
write_basic_package_version_file(${PROJECT_BINARY_DIR}/corioConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/corioConfig.cmake
              ${PROJECT_BINARY_DIR}/corioConfigVersion.cmake
        DESTINATION ${CORIO_CMAKE_DIR})
