# The changelogs of the Debian packages (cmake/package.cmake), at build time:
#   OUT/changelog.gz     Debian's format, which lintian reads in a native package: one entry for VERSION,
#                        dated by CHANGELOG's "## [VERSION] - DATE" heading (today while there is none)
#   OUT/CHANGELOG.md.gz  the project's changelog itself
# Both gzip -9n (cmake/gzip_file.cmake). Usage:
#   cmake -DCHANGELOG=file -DVERSION=x.y.z -DMAINTAINER="Name <address>" -DOUT=dir -P package_docs.cmake
file(MAKE_DIRECTORY "${OUT}")
file(STRINGS "${CHANGELOG}" release_heading REGEX "^## \\[${VERSION}\\] - [0-9-]+")
if(release_heading MATCHES "- ([0-9]+-[0-9]+-[0-9]+)")
  set(date_argument "--date=${CMAKE_MATCH_1} 12:00:00 UTC")
else()
  set(date_argument "--date=now")
endif()
execute_process(
  COMMAND date -u -R "${date_argument}"
  OUTPUT_VARIABLE rfc2822_date
  OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
file(WRITE "${OUT}/changelog"
     "imgdl (${VERSION}) unstable; urgency=medium\n\n"
     "  * imgdl ${VERSION}. Every change is listed in CHANGELOG.md.gz beside this file.\n\n"
     " -- ${MAINTAINER}  ${rfc2822_date}\n")
foreach(pair "${OUT}/changelog;${OUT}/changelog.gz" "${CHANGELOG};${OUT}/CHANGELOG.md.gz")
  list(GET pair 0 in)
  list(GET pair 1 out)
  execute_process(COMMAND "${CMAKE_COMMAND}" -DIN=${in} -DOUT=${out} -P "${CMAKE_CURRENT_LIST_DIR}/gzip_file.cmake"
                  COMMAND_ERROR_IS_FATAL ANY)
endforeach()
