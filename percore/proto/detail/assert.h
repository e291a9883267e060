#pragma once

#include <cstdio>
#include <cstdlib>

// PERCORE_ASSERT checks an invariant (thread ownership, state machine) and
// aborts with its location when it does not hold. It is compiled in unless the
// build turns PERCORE_ASSERTS off (benchmark builds may), so tests always run
// with it. Not for input validation: bad input gets an error code.
#if defined(PERCORE_ENABLE_ASSERTS)
#define PERCORE_ASSERT(condition)                                                            \
  do {                                                                                       \
    if (!(condition)) [[unlikely]] {                                                         \
      std::fprintf(stderr, "percore: assertion failed: %s at %s:%d\n", #condition, __FILE__, \
                   __LINE__);                                                                \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)
#else
#define PERCORE_ASSERT(condition) \
  do {                            \
    (void)sizeof(condition);      \
  } while (false)
#endif
