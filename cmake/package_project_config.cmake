# Read by cpack before it builds each package (CPACK_PROJECT_CONFIG_FILE, cmake/package.cmake).
# CPackDeb puts CPACK_PACKAGE_DESCRIPTION_SUMMARY (project()'s DESCRIPTION, by default) above every
# component's description; each package's description brings its own summary line instead.
unset(CPACK_PACKAGE_DESCRIPTION_SUMMARY)
