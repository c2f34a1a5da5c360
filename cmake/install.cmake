# Install rules for embedding imgdl: headers, the library, a CMake package (imgdl::imgdl) and imgdl.pc.
# Included from the top-level CMakeLists.txt when IMGDL_INSTALL is ON.
#
# Components, so a consumer test (or a distribution) can stage the library without the CLI:
#   imgdl_Runtime      the shared library (with BUILD_SHARED_LIBS)
#   imgdl_Development  headers, the static archive or the .so name link, the CMake package, imgdl.pc
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(IMGDL_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/imgdl"
    CACHE STRING "Where imgdlConfig.cmake goes, relative to the prefix")
mark_as_advanced(IMGDL_INSTALL_CMAKEDIR)

install(
  TARGETS imgdl
  EXPORT imgdlTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT imgdl_Runtime
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT imgdl_Runtime NAMELINK_COMPONENT imgdl_Development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT imgdl_Development)
# Only the public headers: lib/src (including the generated version_config.hpp) stays private.
install(
  DIRECTORY ${PROJECT_SOURCE_DIR}/lib/include/imgdl
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT imgdl_Development
  FILES_MATCHING
  PATTERN "*.hpp")

install(
  EXPORT imgdlTargets
  NAMESPACE imgdl::
  DESTINATION ${IMGDL_INSTALL_CMAKEDIR}
  COMPONENT imgdl_Development)

# A static archive leaves libcurl and libcrypto to the consumer's link, so the package must find them;
# a shared library already carries them.
get_target_property(_imgdl_type imgdl TYPE)
if(_imgdl_type STREQUAL "STATIC_LIBRARY")
  set(IMGDL_STATIC ON)
else()
  set(IMGDL_STATIC OFF)
endif()
configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/imgdlConfig.cmake.in ${PROJECT_BINARY_DIR}/imgdlConfig.cmake
  INSTALL_DESTINATION ${IMGDL_INSTALL_CMAKEDIR}
  NO_SET_AND_CHECK_MACRO)
# find_package(imgdl 0.1) accepts any 0.y.z >= 0.1; a new major version breaks the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/imgdlConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/imgdlConfig.cmake ${PROJECT_BINARY_DIR}/imgdlConfigVersion.cmake
        DESTINATION ${IMGDL_INSTALL_CMAKEDIR} COMPONENT imgdl_Development)

# imgdl.pc locates the prefix from its own directory (${pcfiledir}), so a staged or relocated install
# (cmake --install --prefix ...) still points at the right headers and library.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(IMGDL_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(IMGDL_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH _imgdl_up "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
  string(REGEX REPLACE "/$" "" _imgdl_up "${_imgdl_up}")
  set(IMGDL_PC_PREFIX "\${pcfiledir}/${_imgdl_up}")
  set(IMGDL_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(IMGDL_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(IMGDL_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/imgdl.pc.in ${PROJECT_BINARY_DIR}/imgdl.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/imgdl.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT imgdl_Development)
