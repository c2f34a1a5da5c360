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
# GCC 12 at -O2 reports -Wrestrict on std::string's operator+ (GCC bug 105651) and
# -Wmaybe-uninitialized through std::optional (GCC bug 80635), and -Wnull-dereference inside
# basic_string.h: all false positives in standard library code
# we do not control. They stay visible as warnings but do not fail a -Werror build.
target_compile_options(imgdl_warnings
  INTERFACE $<$<CXX_COMPILER_ID:GNU>:-Wno-error=restrict -Wno-error=maybe-uninitialized -Wno-error=null-dereference>)
