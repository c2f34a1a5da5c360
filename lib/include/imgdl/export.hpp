#pragma once
// IMGDL_API marks what the library exports. It is built with hidden visibility (as fmt is), so in a
// shared build only these symbols are visible outside libimgdl: the public classes and functions, and
// the few implementation types public templates need at link time (detail::StateBase). Everything in
// lib/src stays inside.

#if defined(_WIN32)
#define IMGDL_API
#else
#define IMGDL_API __attribute__((visibility("default")))
#endif
