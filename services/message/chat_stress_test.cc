// Replies started, followed and cancelled from many threads at once over
// one Chats and one in-memory store: the registry of replies generated in
// this process is shared by every call. Also built under TSan and ASan
// (make test-sanitize).

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/ids.h"
#include "gtest/gtest.h"
#include "services/message/chat.h"
#include "services/message/in_memory_message_store.h"

namespace chat::message {
namespace {

// Streams `pieces` pieces, yielding between them, until stopped.
class SlowProvider final : public Provider {
 public:
  const std::string& default_model() const override { return model_; }
  absl::StatusOr<ProviderReply> Complete(
      const std::string& model, const std::vector<ProviderMessage>&,
      const std::function<bool(absl::string_view)>& on_text,
      const std::function<bool()>& should_stop) override {
    for (int i = 0; i < 200; ++i) {
      if (should_stop()) return absl::CancelledError("stopped");
      if (!on_text("x")) return absl::CancelledError("stopped");
      std::this_thread::yield();
    }
    return ProviderReply{.model = model};
  }

 private:
  std::string model_ = "slow";
};

// std's, not absl::Notification: TSan sees pthreads, and Debian's absl is
// not instrumented.
class Started {
 public:
  void Notify() {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
    cv_.notify_all();
  }
  void WaitForNotification() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return done_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
};

// Counts what arrives; drops everything else.
class CountingSink final : public ChatSink {
 public:
  bool SendMessage(const MessageRecord&) override { return true; }
  bool SendReply(const MessageRecord& reply) override {
    reply_id = reply.id;
    started.Notify();
    return true;
  }
  bool SendDelta(absl::string_view, int64_t) override { return true; }
  bool SendDone(const MessageRecord& m, const ProviderUsage&) override {
    done_status = m.status;
    return true;
  }
  void SendError(const absl::Status&) override { errors++; }
  bool Cancelled() override { return false; }

  std::string reply_id;
  Started started;
  MessageStatus done_status = MessageStatus::kInProgress;
  int errors = 0;
};

TEST(ChatStressTest, RepliesCancelledAndFollowedFromManyThreads) {
  constexpr int kUsers = 8;
  constexpr int kRepliesPerUser = 6;
  InMemoryMessageStore store;
  std::vector<std::string> users, conversations;
  for (int u = 0; u < kUsers; ++u) {
    users.push_back(NewUuidV7());
    conversations.push_back(NewUuidV7());
    store.AddConversation(users[u], conversations[u]);
  }
  SystemClock clock;
  SlowProvider provider;
  Chats chats(&store, &provider, &clock,
              {.max_streams_per_user = kRepliesPerUser,
               .save_interval = absl::ZeroDuration(),
               .poll_interval = absl::Microseconds(100)});

  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int u = 0; u < kUsers; ++u) {
    for (int r = 0; r < kRepliesPerUser; ++r) {
      threads.emplace_back([&, u, r] {
        CountingSink sink;
        std::thread canceller;
        std::thread follower;
        if (r % 2 == 0) {
          canceller = std::thread([&] {
            sink.started.WaitForNotification();
            absl::StatusOr<MessageRecord> cancelled =
                chats.CancelReply(users[u], conversations[u], sink.reply_id);
            EXPECT_TRUE(cancelled.ok()) << cancelled.status();
            if (cancelled.ok()) {
              EXPECT_NE(cancelled->status, MessageStatus::kInProgress);
            }
          });
        } else {
          follower = std::thread([&] {
            sink.started.WaitForNotification();
            CountingSink following;
            EXPECT_TRUE(chats
                            .StreamReply(users[u], conversations[u],
                                         sink.reply_id, 0, following)
                            .ok());
            EXPECT_NE(following.done_status, MessageStatus::kInProgress);
          });
        }
        absl::Status run = chats.Run(users[u], conversations[u],
                                     {.content = absl::StrCat("hi ", r)}, sink);
        EXPECT_TRUE(run.ok()) << run;
        if (canceller.joinable()) canceller.join();
        if (follower.joinable()) follower.join();
        EXPECT_NE(sink.done_status, MessageStatus::kInProgress);
        finished++;
      });
    }
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(finished.load(), kUsers * kRepliesPerUser);
  for (int u = 0; u < kUsers; ++u) {
    for (const MessageRecord& m :
         store.StoredMessages(users[u], conversations[u])) {
      EXPECT_NE(m.status, MessageStatus::kInProgress) << m.id;
    }
  }
}

}  // namespace
}  // namespace chat::message
