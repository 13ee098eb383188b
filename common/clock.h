#ifndef CHAT_COMMON_CLOCK_H_
#define CHAT_COMMON_CLOCK_H_

// Time as a dependency, so that expiry, grace windows and throttles are
// tested by moving a clock instead of by sleeping.

#include <atomic>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace chat {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

// A clock that only moves when told to; safe to share between threads.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start) : nanos_(absl::ToUnixNanos(start)) {}
  absl::Time Now() const override { return absl::FromUnixNanos(nanos_.load()); }
  void Advance(absl::Duration d) { nanos_ += absl::ToInt64Nanoseconds(d); }

 private:
  std::atomic<int64_t> nanos_;
};

// `time` truncated to whole microseconds, the precision PostgreSQL keeps, so
// that what a call answers equals what a later read returns.
inline absl::Time ToMicroseconds(absl::Time time) {
  return absl::FromUnixMicros(absl::ToUnixMicros(time));
}

}  // namespace chat

#endif  // CHAT_COMMON_CLOCK_H_
