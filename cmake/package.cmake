# Debian packages from CPack (`cpack -G DEB` in a build tree, or `cmake --workflow --preset deb`):
#   imgdl         component imgdl_Program: bin/imgdl, its man page, bash and zsh completion
#   libimgdl-dev  component imgdl_Development: headers, the static library, the CMake package, imgdl.pc,
#                 the library guide
# each with /usr/share/doc/<package>/copyright and changelog.gz, as Debian policy asks. imgdl's
# dependencies are found by dpkg-shlibdeps from what the binary links; libimgdl-dev's are the -dev
# packages a static libimgdl.a needs at link time (what imgdlConfig.cmake and imgdl.pc look for).
# Included from the top-level CMakeLists.txt when both the program and the install rules are on.
# Lintian's remaining remarks, and why they stay: docs/packaging.md.
include(GNUInstallDirs)

set(IMGDL_PACKAGE_MAINTAINER "imgdl maintainers <maintainers@users.noreply.b-seed-212b6469.example>"
    CACHE STRING "The Maintainer field of the Debian packages")

# The documents every Debian package carries in /usr/share/doc/<package>: the copyright file and a
# changelog.gz in Debian's format (one entry for this version, pointing at the project's changelog),
# plus the project's CHANGELOG.md, gzipped (cmake/package_docs.cmake).
set(IMGDL_PACKAGE_DOCS_DIR ${PROJECT_BINARY_DIR}/package-docs)
set(package_docs ${IMGDL_PACKAGE_DOCS_DIR}/changelog.gz ${IMGDL_PACKAGE_DOCS_DIR}/CHANGELOG.md.gz)
add_custom_command(
  OUTPUT ${package_docs}
  COMMAND ${CMAKE_COMMAND} -DCHANGELOG=${PROJECT_SOURCE_DIR}/CHANGELOG.md -DVERSION=${PROJECT_VERSION}
          "-DMAINTAINER=${IMGDL_PACKAGE_MAINTAINER}" -DOUT=${IMGDL_PACKAGE_DOCS_DIR}
          -P ${CMAKE_CURRENT_LIST_DIR}/package_docs.cmake
  DEPENDS ${PROJECT_SOURCE_DIR}/CHANGELOG.md ${CMAKE_CURRENT_LIST_DIR}/package_docs.cmake
          ${CMAKE_CURRENT_LIST_DIR}/gzip_file.cmake
  VERBATIM)
add_custom_target(imgdl-package-docs ALL DEPENDS ${package_docs})
foreach(package_component IN ITEMS "imgdl;imgdl_Program" "libimgdl-dev;imgdl_Development")
  list(GET package_component 0 package)
  list(GET package_component 1 component)
  install(FILES ${CMAKE_CURRENT_LIST_DIR}/debian/copyright ${package_docs}
          DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${package} COMPONENT ${component})
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/docs/library.md DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/libimgdl-dev
        COMPONENT imgdl_Development)

set(CPACK_PACKAGE_NAME imgdl)
set(CPACK_PACKAGE_VENDOR "imgdl")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${IMGDL_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
# Directories CPack creates (usr, usr/share, ...) get 0755 whatever the builder's umask.
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                                WORLD_READ WORLD_EXECUTE)
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING IGNORE)  # one package per component
set(CPACK_COMPONENTS_ALL imgdl_Program imgdl_Development)
get_target_property(_imgdl_library_type imgdl TYPE)
if(_imgdl_library_type STREQUAL "SHARED_LIBRARY")
  # A shared libimgdl would need its own libimgdl<SOVERSION> package; only the static default is packaged.
  message(WARNING "imgdl packages: BUILD_SHARED_LIBS is not packaged (configure without it for `cpack`)")
endif()

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <package>_<version>_<architecture>.deb
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "${PROJECT_HOMEPAGE_URL}")
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# gzip rather than Debian's default xz: xz took minutes on the 39 MB libimgdl.a of a RelWithDebInfo build
# (the CTest package test's) on a busy 2-core machine, gzip seconds; the program's package is small either way.
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_CURRENT_LIST_DIR}/package_project_config.cmake)

set(CPACK_DEBIAN_IMGDL_PROGRAM_PACKAGE_NAME imgdl)
set(CPACK_DEBIAN_IMGDL_PROGRAM_PACKAGE_SECTION web)
set(CPACK_DEBIAN_IMGDL_PROGRAM_DESCRIPTION
    "concurrent image downloader
imgdl fetches lists of image URLs over HTTP/1.1 and HTTP/2 concurrently and
keeps each body as a file named after its URL, or as WebDataset tar shards.
Every image is checked as it streams (format, size, completeness); nothing
half-written is ever left under a final name, names cannot escape the output
directory, failures are retried with backoff, and interrupted runs resume.
Lists may be plain text, CSV, TSV or JSON Lines, gzip- or zstd-compressed, of
any length. A JSON report records every URL.")

set(CPACK_DEBIAN_IMGDL_DEVELOPMENT_PACKAGE_NAME libimgdl-dev)
set(CPACK_DEBIAN_IMGDL_DEVELOPMENT_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_IMGDL_DEVELOPMENT_PACKAGE_DEPENDS
    "libcurl4-openssl-dev | libcurl-dev, libssl-dev, zlib1g-dev, libzstd-dev")
set(CPACK_DEBIAN_IMGDL_DEVELOPMENT_DESCRIPTION
    "concurrent image downloader library (development files)
The C++20 library behind imgdl: a thread pool with the contract of Python's
concurrent.futures.ThreadPoolExecutor, and a libcurl downloader whose results
are that pool's futures, with the program's naming, image checks, retries and
atomic publishing. This package holds the headers, the static library, a CMake
package (find_package(imgdl)), a pkg-config file and the library guide.")

include(CPack)
