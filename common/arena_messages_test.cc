// ArenaMessages: the request and the answer of a call on one arena, filled
// on one thread and released on another, as a listing's are (the reader
// thread fills the page, a gRPC thread ends the call). Many calls at once;
// meant for TSan and ASan too (make test-sanitize).

#include "common/arena_messages.h"

#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "chat/v1/message.pb.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

using Allocator = ArenaMessages<chat::v1::ListMessagesRequest,
                                chat::v1::ListMessagesResponse>;
using Holder = grpc::MessageHolder<chat::v1::ListMessagesRequest,
                                   chat::v1::ListMessagesResponse>;

// A page larger than the holder's own block: the arena takes more blocks.
constexpr int kPageSize = 200;

std::string ContentOf(int call, int i) {
  return absl::StrCat("call ", call, ", message ", i, ": ",
                      std::string(200, 'x'));
}

void FillPage(int call, chat::v1::ListMessagesResponse* page) {
  for (int i = 0; i < kPageSize; ++i) {
    chat::v1::Message* m = page->add_messages();
    m->set_id(absl::StrCat("01890000-0000-7000-8000-", 100000000000 + i));
    m->set_content(ContentOf(call, i));
    m->mutable_created_at()->set_seconds(1767225600 + i);
  }
  page->set_next_page_token(absl::StrCat("after ", call));
}

// What the page holds once serialized, as the client receives it.
void ExpectPage(int call, const chat::v1::ListMessagesResponse& page) {
  chat::v1::ListMessagesResponse received;
  ASSERT_TRUE(received.ParseFromString(page.SerializeAsString()));
  ASSERT_EQ(received.messages_size(), kPageSize);
  for (int i = 0; i < kPageSize; ++i) {
    EXPECT_EQ(received.messages(i).content(), ContentOf(call, i));
    EXPECT_EQ(received.messages(i).created_at().seconds(), 1767225600 + i);
  }
  EXPECT_EQ(received.next_page_token(), absl::StrCat("after ", call));
}

TEST(ArenaMessagesTest, RequestAndAnswerShareOneArena) {
  Allocator allocator;
  Holder* holder = allocator.AllocateMessages();
  ASSERT_NE(holder->request()->GetArena(), nullptr);
  EXPECT_EQ(holder->response()->GetArena(), holder->request()->GetArena());
  holder->request()->set_conversation_id("c");
  FillPage(0, holder->response());
  EXPECT_EQ(holder->response()->messages(0).GetArena(),
            holder->request()->GetArena());
  ExpectPage(0, *holder->response());
  holder->Release();  // ASan: the arena's blocks and strings are all freed
}

TEST(ArenaMessagesTest, CallsFilledAndReleasedOnOtherThreads) {
  constexpr int kThreads = 8;
  constexpr int kCalls = 40;
  Allocator allocator;
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int c = 0; c < kCalls; ++c) {
        const int call = t * kCalls + c;
        Holder* holder = allocator.AllocateMessages();
        // Filled on a thread of its own, released on this one.
        std::thread([&] { FillPage(call, holder->response()); }).join();
        ExpectPage(call, *holder->response());
        holder->Release();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

}  // namespace
}  // namespace chat
