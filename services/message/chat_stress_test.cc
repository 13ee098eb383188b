// Replies started, followed and cancelled from many threads at once over
// one Chats and one in-memory store: the registry of replies generated in
// this process is shared by every call. Also built under TSan and ASan
// (make test-sanitize).

#include <atomic>
#include <condition_variable>
#include <memory>
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

// Streams 200 pieces to every reply on one thread of its own, a piece to
// each in turn, as the HTTP loop of the real provider does.
class LoopProvider final : public Provider {
 public:
  LoopProvider() : thread_([this] { Run(); }) {}
  ~LoopProvider() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  const std::string& default_model() const override { return model_; }
  void Start(const std::string&, std::vector<ProviderMessage>,
             std::shared_ptr<ProviderStream> stream) override {
    std::lock_guard<std::mutex> lock(mutex_);
    incoming_.push_back({std::move(stream), 0});
    wake_.notify_all();
  }

 private:
  struct Request {
    std::shared_ptr<ProviderStream> stream;
    int sent;
  };

  void Run() {
    std::vector<Request> running;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] {
          return stopping_ || !incoming_.empty() || !running.empty();
        });
        if (stopping_ && incoming_.empty() && running.empty()) return;
        for (Request& r : incoming_) running.push_back(std::move(r));
        incoming_.clear();
      }
      std::vector<Request> still;
      for (Request& r : running) {
        if (r.stream->ShouldStop() || !r.stream->OnText("x")) {
          r.stream->OnEnd(absl::CancelledError("stopped"));
        } else if (++r.sent == 200) {
          r.stream->OnEnd(ProviderReply{.model = model_});
        } else {
          still.push_back(std::move(r));
        }
      }
      running.swap(still);
      std::this_thread::yield();
    }
  }

  std::string model_ = "loop";
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Request> incoming_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts when the rest stands
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

// Counts what arrives, from any thread; drops the text.
class CountingSink final : public ChatSink {
 public:
  bool SendMessage(const MessageRecord&) override { return true; }
  bool SendReply(const MessageRecord& reply) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      reply_id_ = reply.id;
    }
    started.Notify();
    return true;
  }
  bool SendDelta(absl::string_view, int64_t) override { return true; }
  bool SendDone(const MessageRecord& m, const ProviderUsage&) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_status_ = m.status;
    }
    ended.Notify();
    return true;
  }
  void SendError(const absl::Status&) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++errors_;
    }
    ended.Notify();
  }
  bool Cancelled() override { return false; }

  std::string reply_id() {
    std::lock_guard<std::mutex> lock(mutex_);
    return reply_id_;
  }
  MessageStatus done_status() {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_status_;
  }
  int errors() {
    std::lock_guard<std::mutex> lock(mutex_);
    return errors_;
  }

  Started started;
  Started ended;

 private:
  std::mutex mutex_;
  std::string reply_id_;
  MessageStatus done_status_ = MessageStatus::kInProgress;
  int errors_ = 0;
};

TEST(ChatStressTest, RepliesCancelledSavedAndFollowedFromManyThreads) {
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
  LoopProvider provider;
  Chats chats(&store, &provider, &clock,
              {.max_streams_per_user = kRepliesPerUser, .finish_threads = 2});
  // The service's rhythm, much faster.
  std::atomic<bool> ticking{true};
  std::thread ticker([&] {
    while (ticking) {
      chats.SaveReplies();
      chats.FollowReplies();
      std::this_thread::yield();
    }
  });

  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int u = 0; u < kUsers; ++u) {
    for (int r = 0; r < kRepliesPerUser; ++r) {
      threads.emplace_back([&, u, r] {
        auto sink = std::make_shared<CountingSink>();
        auto following = std::make_shared<CountingSink>();
        std::thread helper([&] {
          sink->started.WaitForNotification();
          if (r % 2 == 0) {
            absl::StatusOr<MessageRecord> cancelled =
                chats.CancelReply(users[u], conversations[u], sink->reply_id());
            EXPECT_TRUE(cancelled.ok()) << cancelled.status();
            if (cancelled.ok()) {
              EXPECT_NE(cancelled->status, MessageStatus::kInProgress);
            }
          } else {
            EXPECT_TRUE(chats
                            .StreamReply(users[u], conversations[u],
                                         sink->reply_id(), 0, following)
                            .ok());
            following->ended.WaitForNotification();
            EXPECT_NE(following->done_status(), MessageStatus::kInProgress);
            EXPECT_EQ(following->errors(), 0);
          }
        });
        absl::Status run = chats.Run(users[u], conversations[u],
                                     {.content = absl::StrCat("hi ", r)}, sink);
        EXPECT_TRUE(run.ok()) << run;
        if (!run.ok()) sink->started.Notify();
        helper.join();
        if (run.ok()) {
          sink->ended.WaitForNotification();
          EXPECT_NE(sink->done_status(), MessageStatus::kInProgress);
        }
        finished++;
      });
    }
  }
  for (std::thread& t : threads) t.join();
  ticking = false;
  ticker.join();
  EXPECT_EQ(finished.load(), kUsers * kRepliesPerUser);
  for (int u = 0; u < kUsers; ++u) {
    for (const MessageRecord& m :
         store.StoredMessages(users[u], conversations[u])) {
      EXPECT_NE(m.status, MessageStatus::kInProgress) << m.id;
    }
  }
}

TEST(ChatStressTest, DestroyingChatsStopsAndEndsEveryReply) {
  InMemoryMessageStore store;
  const std::string user = NewUuidV7();
  const std::string conversation = NewUuidV7();
  store.AddConversation(user, conversation);
  SystemClock clock;
  LoopProvider provider;
  std::vector<std::shared_ptr<CountingSink>> sinks;
  {
    Chats chats(&store, &provider, &clock,
                {.max_streams_per_user = 32, .finish_threads = 2});
    for (int i = 0; i < 32; ++i) {
      sinks.push_back(std::make_shared<CountingSink>());
      ASSERT_TRUE(
          chats.Run(user, conversation, {.content = "hi"}, sinks[i]).ok());
    }
  }  // stops every reply and waits for its end
  for (const std::shared_ptr<CountingSink>& sink : sinks) {
    sink->ended.WaitForNotification();
    EXPECT_NE(sink->done_status(), MessageStatus::kInProgress);
  }
  for (const MessageRecord& m : store.StoredMessages(user, conversation)) {
    EXPECT_NE(m.status, MessageStatus::kInProgress) << m.id;
  }
}

}  // namespace
}  // namespace chat::message
