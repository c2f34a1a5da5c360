# Makes the documents generated from the program's own option table, at build time (app/CMakeLists.txt):
#   OUT/imgdl.1      the man page: TEMPLATE (app/imgdl.1.in) with @OPTIONS@ from
#                    `IMGDL --generate-doc man-options`, @VERSION@, and @DATE@ from CHANGELOG's
#                    "## [VERSION] - DATE" heading ("unreleased" while there is none)
#   OUT/imgdl.1.gz   the same, as installed (gzip -9n: no name or time stamp, so builds are reproducible)
#   OUT/imgdl.bash   bash completion (`IMGDL --generate-doc bash`), installed as completions/imgdl
#   OUT/_imgdl       zsh completion (`IMGDL --generate-doc zsh`)
# Usage: cmake -DIMGDL=exe -DTEMPLATE=file -DCHANGELOG=file -DVERSION=x.y.z -DOUT=dir -P generate_docs.cmake
foreach(var IMGDL TEMPLATE CHANGELOG VERSION OUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "generate_docs.cmake: -D${var}=... is required")
  endif()
endforeach()

function(run_imgdl kind out_var)
  execute_process(
    COMMAND "${IMGDL}" --generate-doc ${kind}
    OUTPUT_VARIABLE text
    ERROR_VARIABLE errors
    RESULT_VARIABLE result)
  if(NOT result EQUAL 0 OR text STREQUAL "")
    message(FATAL_ERROR "${IMGDL} --generate-doc ${kind} failed (${result}): ${errors}")
  endif()
  set(${out_var} "${text}" PARENT_SCOPE)
endfunction()

file(MAKE_DIRECTORY "${OUT}")

run_imgdl(man-options OPTIONS)
string(REGEX REPLACE "\n$" "" OPTIONS "${OPTIONS}")
file(STRINGS "${CHANGELOG}" release_heading REGEX "^## \\[${VERSION}\\] - [0-9-]+")
if(release_heading MATCHES "- ([0-9]+-[0-9]+-[0-9]+)")
  set(DATE "${CMAKE_MATCH_1}")
else()
  set(DATE "unreleased")
endif()
configure_file("${TEMPLATE}" "${OUT}/imgdl.1" @ONLY)
execute_process(COMMAND "${CMAKE_COMMAND}" -DIN=${OUT}/imgdl.1 -DOUT=${OUT}/imgdl.1.gz -P
                        "${CMAKE_CURRENT_LIST_DIR}/gzip_file.cmake" COMMAND_ERROR_IS_FATAL ANY)

run_imgdl(bash bash_script)
file(WRITE "${OUT}/imgdl.bash" "${bash_script}")
run_imgdl(zsh zsh_script)
file(WRITE "${OUT}/_imgdl" "${zsh_script}")
