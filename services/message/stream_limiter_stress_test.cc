// StreamLimiter under contention: never more leases of one user alive than
// the cap, exactly the cap admitted when everyone asks at once, and nothing
// left counted once every lease is gone. Meant for TSan too (make
// test-sanitize).

#include <atomic>
#include <barrier>
#include <deque>
#include <latch>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/message/stream_limiter.h"

namespace chat::message {
namespace {

constexpr int kThreads = 8;
constexpr int kMaxPerUser = 3;

TEST(StreamLimiterStressTest, EveryoneAtOnceAdmitsExactlyTheCap) {
  StreamLimiter limiter(kMaxPerUser);
  constexpr int kRounds = 200;
  // Each round: every thread tries for the same user, all tries are made
  // while the winners still hold their leases, then everyone lets go.
  std::barrier tried(kThreads), released(kThreads);
  std::vector<int> admitted(kRounds);
  std::atomic<int> admitted_this_round{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kThreads; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < kRounds; ++round) {
        std::optional<StreamLimiter::Lease> lease = limiter.TryAcquire("u");
        if (lease) admitted_this_round.fetch_add(1);
        tried.arrive_and_wait();
        if (w == 0) admitted[round] = admitted_this_round.exchange(0);
        lease.reset();
        released.arrive_and_wait();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int round = 0; round < kRounds; ++round) {
    ASSERT_EQ(admitted[round], kMaxPerUser) << "round " << round;
  }
}

TEST(StreamLimiterStressTest, ChurnNeverOverAdmitsAndLeavesNothingBehind) {
  StreamLimiter limiter(kMaxPerUser);
  constexpr int kUsers = 3;
  constexpr int kIterations = 5000;
  // Leases alive per user, as the holders count them.
  std::vector<std::atomic<int>> alive(kUsers);
  std::vector<std::atomic<int>> highest(kUsers);
  std::atomic<int> over{0};
  std::atomic<long> granted{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int w = 0; w < kThreads; ++w) {
    threads.emplace_back([&, w] {
      start.arrive_and_wait();
      // Holds up to two leases at a time, of varying users, moved around.
      std::deque<std::pair<int, StreamLimiter::Lease>> held;
      for (int i = 0; i < kIterations; ++i) {
        const int user = (i * 7 + w) % kUsers;
        if (std::optional<StreamLimiter::Lease> lease =
                limiter.TryAcquire(absl::StrCat("user-", user))) {
          granted.fetch_add(1);
          const int now = alive[user].fetch_add(1) + 1;
          if (now > kMaxPerUser) over.fetch_add(1);
          int seen = highest[user].load();
          while (now > seen &&
                 !highest[user].compare_exchange_weak(seen, now)) {
          }
          held.emplace_back(user, *std::move(lease));
        }
        if (held.size() > 2 || (i % 3 == 0 && !held.empty())) {
          // Count it gone before the limiter does, never after.
          alive[held.front().first].fetch_sub(1);
          held.pop_front();
        }
      }
      for (auto& [user, lease] : held) alive[user].fetch_sub(1);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(over.load(), 0);
  EXPECT_GT(granted.load(), kThreads);  // it did admit, under contention
  for (int user = 0; user < kUsers; ++user) {
    EXPECT_LE(highest[user].load(), kMaxPerUser);
    // All leases are gone: each user has every slot again, and no more.
    std::vector<StreamLimiter::Lease> leases;
    for (int i = 0; i < kMaxPerUser; ++i) {
      std::optional<StreamLimiter::Lease> lease =
          limiter.TryAcquire(absl::StrCat("user-", user));
      ASSERT_TRUE(lease) << "user " << user << " slot " << i;
      leases.push_back(*std::move(lease));
    }
    EXPECT_FALSE(limiter.TryAcquire(absl::StrCat("user-", user)));
  }
}

}  // namespace
}  // namespace chat::message
