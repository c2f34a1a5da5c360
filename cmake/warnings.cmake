# Warnings live on an INTERFACE target linked as $<BUILD_INTERFACE:imgdl_warnings>, so they apply to
# imgdl's own targets and never leak into a consumer's build.
add_library(imgdl_warnings INTERFACE)
target_compile_options(
  imgdl_warnings
  INTERFACE $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
            -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion
            -Wnull-dereference -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
            # Option structs are meant for designated initializers, which leave fields defaulted.
            -Wno-missing-field-initializers>)
