#ifndef CHAT_COMMON_THREAD_POOL_H_
#define CHAT_COMMON_THREAD_POOL_H_

// A fixed set of threads that run scheduled work in order of arrival: the
// blocking steps of many concurrent calls (database transactions) share a
// bounded number of threads instead of holding one each.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace chat {

// Where work runs. ThreadPool in services; tests may run it inline.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void Schedule(std::function<void()> work) = 0;
};

// Runs work at once, in the calling thread.
class InlineExecutor final : public Executor {
 public:
  void Schedule(std::function<void()> work) override { work(); }
};

class ThreadPool final : public Executor {
 public:
  explicit ThreadPool(int threads);
  // Runs the work already scheduled, then joins the threads.
  ~ThreadPool() override;

  void Schedule(std::function<void()> work) override;

 private:
  void Work();

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Calls `tick` every `interval` on a thread of its own (the first time at
// once) until destroyed; the destructor waits for a tick under way.
class PeriodicThread {
 public:
  PeriodicThread(std::chrono::nanoseconds interval, std::function<void()> tick);
  ~PeriodicThread();

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace chat

#endif  // CHAT_COMMON_THREAD_POOL_H_
