#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/thread_pool.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

TEST(ThreadPoolStressTest, RunsEveryScheduledWorkOnceFromManyThreads) {
  constexpr int kProducers = 8;
  constexpr int kEach = 2000;
  std::vector<std::atomic<int>> runs(kProducers * kEach);
  {
    ThreadPool pool(4);
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        for (int i = 0; i < kEach; ++i) {
          pool.Schedule([&runs, n = p * kEach + i] { runs[n].fetch_add(1); });
        }
      });
    }
    for (std::thread& t : producers) t.join();
  }  // the destructor runs what is queued
  for (const std::atomic<int>& r : runs) ASSERT_EQ(r.load(), 1);
}

TEST(ThreadPoolStressTest, RunsWorkOnAtMostItsThreads) {
  constexpr int kThreads = 3;
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  {
    ThreadPool pool(kThreads);
    for (int i = 0; i < 300; ++i) {
      pool.Schedule([&] {
        const int now = running.fetch_add(1) + 1;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::yield();
        running.fetch_sub(1);
      });
    }
  }
  EXPECT_GE(most.load(), 1);
  EXPECT_LE(most.load(), kThreads);
}

TEST(ThreadPoolStressTest, WorkMayScheduleMoreWork) {
  std::atomic<int> runs{0};
  {
    ThreadPool pool(2);
    for (int i = 0; i < 100; ++i) {
      pool.Schedule([&] {
        runs.fetch_add(1);
        pool.Schedule([&] { runs.fetch_add(1); });
      });
    }
    // Wait for both generations before the pool goes.
    while (runs.load() < 200) std::this_thread::yield();
  }
  EXPECT_EQ(runs.load(), 200);
}

TEST(PeriodicThreadTest, TicksAtOnceAndAgainUntilDestroyed) {
  std::mutex mutex;
  std::condition_variable cv;
  int ticks = 0;
  {
    PeriodicThread thread(std::chrono::milliseconds(1), [&] {
      std::lock_guard<std::mutex> lock(mutex);
      ++ticks;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30),
                            [&] { return ticks >= 3; }));
  }
  std::lock_guard<std::mutex> lock(mutex);
  const int at_destruction = ticks;
  EXPECT_GE(at_destruction, 3);
}

TEST(PeriodicThreadTest, DestructionDoesNotWaitForTheInterval) {
  const auto start = std::chrono::steady_clock::now();
  {
    PeriodicThread thread(std::chrono::hours(1), [] {});
  }
  // An hour's interval would hang the test; stopping wakes the thread.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::minutes(1));
}

}  // namespace
}  // namespace chat
