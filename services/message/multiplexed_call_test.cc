// MultiplexedCall, the state that the streams of one Multiplex call share,
// driven from many threads at once as the reply threads, gRPC's reactions
// and the reader of the call drive it, with a writer that completes each
// batch on a thread of its own as gRPC does. No gRPC here: built under TSan
// and ASan too (make test-sanitize), where every access is seen.

#include "services/message/multiplexed_call.h"

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace chat::message {
namespace {

using chat::v1::StreamEvent;

// Takes each batch, and on its own thread reports it written (or not,
// once told to fail) after the test lets it go.
class ThreadWriter final : public MultiplexedCall::Writer {
 public:
  explicit ThreadWriter(bool hold = false) : hold_(hold) {}
  ~ThreadWriter() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void Bind(std::shared_ptr<MultiplexedCall> call) {
    call_ = std::move(call);
    thread_ = std::thread([this] { Run(); });
  }

  void StartBatch(const chat::v1::MultiplexResponse* batch) override {
    std::lock_guard<std::mutex> lock(mutex_);
    EXPECT_EQ(pending_, nullptr) << "a write while one is under way";
    pending_ = batch;
    cv_.notify_all();
  }
  void FinishCall(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mutex_);
    ++finishes_;
    EXPECT_EQ(pending_, nullptr) << "finished with a write under way";
    status_ = status;
    cv_.notify_all();
  }

  // Lets held writes go; `ok`: report them written.
  void Release(bool ok) {
    std::lock_guard<std::mutex> lock(mutex_);
    hold_ = false;
    ok_ = ok;
    cv_.notify_all();
  }

  // Waits for the call's end; its status.
  grpc::Status WaitFinished() {
    std::unique_lock<std::mutex> lock(mutex_);
    EXPECT_TRUE(cv_.wait_for(lock, std::chrono::seconds(30),
                             [&] { return finishes_ > 0; }));
    return status_;
  }
  int finishes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return finishes_;
  }
  std::map<uint64_t, std::vector<StreamEvent>> streams() {
    std::lock_guard<std::mutex> lock(mutex_);
    return streams_;
  }
  int ends() {
    std::lock_guard<std::mutex> lock(mutex_);
    return ends_;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || (pending_ && !hold_); });
      if (stopping_) return;
      for (const StreamEvent& e : pending_->events()) {
        streams_[e.stream()].push_back(e);
        if (e.has_end()) ++ends_;
      }
      pending_ = nullptr;
      const bool ok = ok_;
      lock.unlock();
      call_->WriteDone(ok);
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  const chat::v1::MultiplexResponse* pending_ = nullptr;
  bool hold_;
  bool ok_ = true;
  bool stopping_ = false;
  int finishes_ = 0;
  grpc::Status status_;
  std::map<uint64_t, std::vector<StreamEvent>> streams_;
  int ends_ = 0;
  std::shared_ptr<MultiplexedCall> call_;
  std::thread thread_;  // last
};

MessageRecord Reply(uint64_t id) {
  MessageRecord m;
  m.id = absl::StrCat("m", id);
  m.content = absl::StrCat("reply ", id);
  return m;
}

TEST(MultiplexedCallTest, StreamsFromManyThreadsKeepTheirOrder) {
  ThreadWriter writer;
  auto call = std::make_shared<MultiplexedCall>(
      &writer, MultiplexedCall::Limits{.batch_events = 16});
  writer.Bind(call);
  constexpr int kThreads = 8;
  constexpr int kStreams = 40;  // each thread's
  constexpr int kDeltas = 30;
  std::vector<std::thread> threads;
  std::atomic<int> refused{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int s = 0; s < kStreams; ++s) {
        const uint64_t id = t * kStreams + s + 1;
        std::shared_ptr<MultiplexedCall::Sink> sink =
            call->Open(id, absl::StrCat("rid-", id));
        ASSERT_NE(sink, nullptr);
        for (int d = 0; d < kDeltas; ++d) {
          if (!sink->SendDelta(absl::StrCat(id, ":", d), d)) refused++;
          // Every seventh stream is closed by its client half way.
          if (id % 7 == 0 && d == kDeltas / 2) call->Close(id);
        }
        if (id % 11 == 0) {
          sink->SendError(absl::UnavailableError("provider"));
        } else if (!sink->SendDone(Reply(id), {})) {
          refused++;
        }
        EXPECT_TRUE(sink->Cancelled());  // ended or closed
      }
    });
  }
  for (std::thread& t : threads) t.join();
  // Every stream has ended or been closed: a drained call finishes once
  // all that was queued is written.
  call->Drain();
  EXPECT_TRUE(writer.WaitFinished().ok());
  EXPECT_EQ(writer.finishes(), 1);

  const auto streams = writer.streams();
  int closed = 0;
  for (uint64_t id = 1; id <= kThreads * kStreams; ++id) {
    const auto it = streams.find(id);
    ASSERT_NE(it, streams.end()) << id;
    if (it == streams.end()) continue;
    const std::vector<StreamEvent>& events = it->second;
    // The deltas in order, each its own stream's.
    size_t i = 0;
    for (; i < events.size() && events[i].event().has_delta(); ++i) {
      EXPECT_EQ(events[i].event().delta().text(), absl::StrCat(id, ":", i));
    }
    if (id % 7 == 0) {
      ++closed;
      EXPECT_EQ(i, kDeltas / 2 + 1) << id;  // nothing after the close
      EXPECT_EQ(i, events.size()) << id;
      continue;
    }
    ASSERT_EQ(i, kDeltas) << id;
    ASSERT_EQ(events.size(), kDeltas + 2u) << id;
    if (id % 11 == 0) {
      EXPECT_EQ(events[i].event().error().code(), "UNAVAILABLE");
      EXPECT_EQ(events[i].event().error().request_id(),
                absl::StrCat("rid-", id));
    } else {
      EXPECT_EQ(events[i].event().done().message().content(),
                absl::StrCat("reply ", id));
    }
    EXPECT_TRUE(events[i + 1].has_end());
    EXPECT_EQ(events[i + 1].end().code(), 0);
  }
  EXPECT_EQ(writer.ends(), kThreads * kStreams - closed);
  // The closed streams' deltas after the close, and their done (an error
  // event's refusal is not seen).
  int want_refused = 0;
  for (uint64_t id = 7; id <= kThreads * kStreams; id += 7) {
    want_refused += kDeltas - kDeltas / 2 - 1 + (id % 11 == 0 ? 0 : 1);
  }
  EXPECT_EQ(refused.load(), want_refused);
}

TEST(MultiplexedCallTest, EndingWhileStreamsPushRefusesTheRest) {
  for (int round = 0; round < 20; ++round) {
    ThreadWriter writer;
    auto call =
        std::make_shared<MultiplexedCall>(&writer, MultiplexedCall::Limits{});
    writer.Bind(call);
    std::atomic<bool> ended{false};
    std::atomic<int> taken_after_end{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::shared_ptr<MultiplexedCall::Sink> sink = call->Open(t + 1, "");
        for (int d = 0; d < 500; ++d) {
          const bool was_ended = ended.load();
          if (sink->SendDelta("x", d) && was_ended) taken_after_end++;
        }
      });
    }
    std::thread ender([&] {
      std::this_thread::yield();
      call->End(grpc::Status::CANCELLED);
      ended = true;
    });
    for (std::thread& t : threads) t.join();
    ender.join();
    EXPECT_EQ(writer.WaitFinished().error_code(), grpc::StatusCode::CANCELLED);
    EXPECT_EQ(writer.finishes(), 1);
    EXPECT_EQ(taken_after_end.load(), 0);
    // A stream opened after the end is closed from the start.
    std::shared_ptr<MultiplexedCall::Sink> late = call->Open(99, "");
    ASSERT_NE(late, nullptr);
    EXPECT_TRUE(late->Cancelled());
    EXPECT_FALSE(late->SendDelta("x", 0));
  }
}

TEST(MultiplexedCallTest, AClientThatDoesNotReadEndsTheCall) {
  ThreadWriter writer(/*hold=*/true);
  auto call = std::make_shared<MultiplexedCall>(
      &writer, MultiplexedCall::Limits{.queued_bytes = 64 << 10});
  writer.Bind(call);
  std::shared_ptr<MultiplexedCall::Sink> sink = call->Open(1, "");
  const std::string text(1000, 'x');
  int taken = 0;
  while (sink->SendDelta(text, 0) && taken < 1000) ++taken;
  // The first batch went to the writer; about 64 KiB more waited.
  EXPECT_GT(taken, 60);
  EXPECT_LT(taken, 70);
  EXPECT_TRUE(sink->Cancelled());
  writer.Release(true);
  EXPECT_EQ(writer.WaitFinished().error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(MultiplexedCallTest, ABrokenWriteEndsEveryStream) {
  ThreadWriter writer(/*hold=*/true);
  auto call =
      std::make_shared<MultiplexedCall>(&writer, MultiplexedCall::Limits{});
  writer.Bind(call);
  std::shared_ptr<MultiplexedCall::Sink> a = call->Open(1, "");
  std::shared_ptr<MultiplexedCall::Sink> b = call->Open(2, "");
  EXPECT_EQ(call->Open(2, ""), nullptr);  // the number is in use
  EXPECT_TRUE(a->SendDelta("a", 0));
  writer.Release(false);
  EXPECT_EQ(writer.WaitFinished().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(a->Cancelled());
  EXPECT_TRUE(b->Cancelled());
  EXPECT_FALSE(b->SendDelta("b", 0));
}

TEST(MultiplexedCallTest, DrainingFinishesAfterTheLastStream) {
  ThreadWriter writer;
  auto call =
      std::make_shared<MultiplexedCall>(&writer, MultiplexedCall::Limits{});
  writer.Bind(call);
  std::shared_ptr<MultiplexedCall::Sink> a = call->Open(1, "");
  std::shared_ptr<MultiplexedCall::Sink> b = call->Open(2, "");
  call->Drain();
  EXPECT_TRUE(call->Draining());
  EXPECT_TRUE(a->SendDone(Reply(1), {}));
  EXPECT_TRUE(b->SendDelta("b", 0));
  EXPECT_EQ(writer.finishes(), 0);  // b is open
  call->Fail(*b, grpc::Status(grpc::StatusCode::UNAVAILABLE, "stopping"));
  EXPECT_TRUE(writer.WaitFinished().ok());
  const auto streams = writer.streams();
  EXPECT_EQ(streams.at(1).back().end().code(), 0);
  // Its delta, then the end with the status it failed with.
  EXPECT_EQ(streams.at(2).size(), 2u);
  EXPECT_EQ(streams.at(2).back().end().code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace chat::message
