#pragma once
// Whether this test binary is built with AddressSanitizer or ThreadSanitizer, which slow each
// operation by an order of magnitude: tests scale their work down or widen their hang bounds.

namespace imgdl::test {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif
#else
inline constexpr bool sanitized = false;
#endif

}  // namespace imgdl::test
