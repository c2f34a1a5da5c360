# imgdl_embed_tsan_suppressions(): in a ThreadSanitizer build, compiles tests/tsan.supp into every
# executable of this project (read at configure time, re-read when it changes), where the runtime finds
# it through __tsan_default_suppressions(). TSAN_OPTIONS then names no file: a file under the checkout
# cannot be read by a test that re-runs itself as "nobody" when the checkout sits under a 0700
# directory, and a path holding a space, ':' or ',' does not survive TSAN_OPTIONS's parser.
function(imgdl_embed_tsan_suppressions)
  if(NOT CMAKE_CXX_FLAGS MATCHES "-fsanitize=[^ ]*thread")
    return()
  endif()
  set(suppressions ${PROJECT_SOURCE_DIR}/tests/tsan.supp)
  set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${suppressions})
  file(READ ${suppressions} IMGDL_TSAN_SUPPRESSIONS)
  set(source ${PROJECT_BINARY_DIR}/tsan_suppressions.cpp)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/tsan_suppressions.cpp.in ${source} @ONLY)
  # Every executable, wherever it was declared: a new test or example needs nothing to get them.
  set(directories ${PROJECT_SOURCE_DIR})
  while(directories)
    list(POP_FRONT directories directory)
    get_property(subdirectories DIRECTORY ${directory} PROPERTY SUBDIRECTORIES)
    list(APPEND directories ${subdirectories})
    get_property(targets DIRECTORY ${directory} PROPERTY BUILDSYSTEM_TARGETS)
    foreach(target IN LISTS targets)
      get_target_property(type ${target} TYPE)
      if(type STREQUAL "EXECUTABLE")
        target_sources(${target} PRIVATE ${source})
      endif()
    endforeach()
  endwhile()
endfunction()
