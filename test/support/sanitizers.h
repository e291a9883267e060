#pragma once

// Whether this build runs under AddressSanitizer or ThreadSanitizer: they
// reserve terabytes of address space and keep freed memory in quarantine, so
// tests that bound address space or resident memory skip those checks.
namespace percore::testing {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

}  // namespace percore::testing
