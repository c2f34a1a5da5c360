# gzip -9n IN > OUT, for files a package carries compressed: -n leaves the name and time stamp out of
# the header, so two builds of the same input give the same bytes.
# Usage: cmake -DIN=file -DOUT=file.gz -P gzip_file.cmake
execute_process(
  COMMAND gzip -9 -n -c "${IN}"
  OUTPUT_FILE "${OUT}"
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  file(REMOVE "${OUT}")
  message(FATAL_ERROR "gzip -9n ${IN} failed: ${result}")
endif()
