#ifndef CHAT_FUZZ_FUZZ_CHECK_H_
#define CHAT_FUZZ_FUZZ_CHECK_H_

// An invariant of a fuzz target: a violation is a crash with a message, so
// libFuzzer keeps the input that broke it.

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                         \
  do {                                                                \
    if (!(condition)) {                                               \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, \
                   __LINE__, #condition);                             \
      std::abort();                                                   \
    }                                                                 \
  } while (false)

#endif  // CHAT_FUZZ_FUZZ_CHECK_H_
