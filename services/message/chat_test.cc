// Unit tests of Chats::Run (docs/api.md "Assistant replies", docs/api.md
// "Assistant replies (Chat)") over InMemoryMessageStore, a FakeClock, a
// scripted provider and a recording sink: no database, no network, no
// threads.

#include "services/message/chat.h"

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/ids.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/message/in_memory_message_store.h"

namespace chat::message {
namespace {

using ::chat::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr char kUser[] = "0190a000-0000-7000-8000-0000000000a1";
constexpr char kOtherUser[] = "0190a000-0000-7000-8000-0000000000a2";
constexpr char kConversation[] = "0190a000-0000-7000-8000-0000000000c1";
// Another conversation of kUser.
constexpr char kSecondConversation[] = "0190a000-0000-7000-8000-0000000000c2";
// A conversation of kUser with a title of its own.
constexpr char kTitledConversation[] = "0190a000-0000-7000-8000-0000000000c4";
// A conversation of kOtherUser.
constexpr char kForeignConversation[] = "0190a000-0000-7000-8000-0000000000c3";

// A provider that answers from a script: it records what it was asked,
// runs the next of `during` (one per call) as if time passed while the model
// worked, streams `pieces` while nobody stops it, then fails with `error` or
// answers.
class FakeProvider final : public BlockingProvider {
 public:
  const std::string& default_model() const override { return default_model_; }

  absl::StatusOr<ProviderReply> Complete(
      const std::string& model, const std::vector<ProviderMessage>& messages,
      const std::function<bool(absl::string_view)>& on_text,
      const std::function<bool()>& should_stop) override {
    ++calls;
    requested_model = model;
    context.clear();
    for (const ProviderMessage& m : messages) {
      context.push_back(absl::StrCat(RoleName(m.role), ": ", m.content));
    }
    if (!during.empty()) {
      std::function<void()> hook = std::move(during.front());
      during.pop_front();
      hook();
    }
    for (const std::string& piece : pieces) {
      if (should_stop()) {
        stopped = true;
        return absl::CancelledError("stopped");
      }
      if (!on_text(piece)) return absl::CancelledError("the client is gone");
    }
    if (!error.ok()) return error;
    return ProviderReply{
        .model = answering_model.empty() ? model : answering_model,
        .usage = usage};
  }

  std::string default_model_ = "fake-default";
  std::vector<std::string> pieces = {"Hel", "lo"};
  absl::Status error;           // after the pieces, when not OK
  std::string answering_model;  // empty: the model asked
  ProviderUsage usage = {
      .prompt_tokens = 7, .completion_tokens = 2, .total_tokens = 9};
  std::deque<std::function<void()>> during;

  int calls = 0;
  std::string requested_model;
  std::vector<std::string> context;  // "role: content", as sent last
  bool stopped = false;              // saw should_stop()
};

struct SinkEvent {
  enum class Kind { kMessage, kReply, kDelta, kDone, kError };
  Kind kind;
  std::string text;       // a delta's
  int64_t offset = 0;     // a delta's
  MessageRecord message;  // the message's or done's
  ProviderUsage usage;    // done's
  absl::Status error;     // error's
};
using Kind = SinkEvent::Kind;

// Records every event. The client can go away when the message event
// arrives, refuse a delta (a write that fails) or cancel after some deltas.
class FakeSink final : public ChatSink {
 public:
  bool SendMessage(const MessageRecord& user_message) override {
    events.push_back({.kind = Kind::kMessage, .message = user_message});
    return accept_message;
  }
  bool SendReply(const MessageRecord& reply) override {
    events.push_back({.kind = Kind::kReply, .message = reply});
    return true;
  }
  bool SendDelta(absl::string_view text, int64_t offset) override {
    events.push_back(
        {.kind = Kind::kDelta, .text = std::string(text), .offset = offset});
    ++deltas_;
    return deltas_ != refuse_delta;
  }
  bool SendDone(const MessageRecord& reply,
                const ProviderUsage& usage) override {
    events.push_back({.kind = Kind::kDone, .message = reply, .usage = usage});
    return true;
  }
  void SendError(const absl::Status& error) override {
    events.push_back({.kind = Kind::kError, .error = error});
  }
  bool Cancelled() override {
    return cancel_after_deltas >= 0 && deltas_ >= cancel_after_deltas;
  }

  std::vector<Kind> Kinds() const {
    std::vector<Kind> kinds;
    for (const SinkEvent& e : events) kinds.push_back(e.kind);
    return kinds;
  }

  bool accept_message = true;
  int refuse_delta = 0;          // 1-based; 0: none
  int cancel_after_deltas = -1;  // -1: never
  std::vector<SinkEvent> events;

 private:
  int deltas_ = 0;
};

// A sink the test owns, for calls that end before they return.
std::shared_ptr<ChatSink> Borrow(FakeSink& sink) {
  return std::shared_ptr<ChatSink>(&sink, [](ChatSink*) {});
}

std::string Repeat(absl::string_view text, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out.append(text.data(), text.size());
  return out;
}

std::vector<std::string> FieldsOf(const absl::Status& status) {
  std::vector<std::string> fields;
  for (const FieldViolation& v : ViolationsOf(status)) {
    fields.push_back(v.field);
  }
  return fields;
}

class ChatTest : public ::testing::Test {
 protected:
  ChatTest() {
    store_.AddConversation(kUser, kConversation);
    store_.AddConversation(kUser, kSecondConversation);
    store_.AddConversation(kUser, kTitledConversation, /*untitled=*/false,
                           "My own title");
    store_.AddConversation(kOtherUser, kForeignConversation);
  }

  // Stores an earlier message directly, as an earlier request would have.
  void Earlier(Role role, const std::string& content,
               MessageStatus status = MessageStatus::kComplete,
               const std::string& conversation_id = kConversation) {
    const absl::Time now = ToMicroseconds(clock_.Now());
    ASSERT_OK(store_.Append(kUser,
                            {.id = NewUuidV7(now),
                             .conversation_id = conversation_id,
                             .role = role,
                             .content = content,
                             .status = status,
                             .created_at = now,
                             .updated_at = now},
                            std::nullopt, std::nullopt));
  }

  std::vector<MessageRecord> Stored(
      const std::string& conversation_id = kConversation) {
    return store_.StoredMessages(kUser, conversation_id);
  }

  const absl::Time start_ = absl::FromUnixSeconds(1767225600);
  FakeClock clock_{start_};
  InMemoryMessageStore store_;
  FakeProvider provider_;
  FakeSink sink_;
};

// --- The stream and what is stored ------------------------------------------

TEST_F(ChatTest, StreamsTheUserMessageTheDeltasAndDoneInOrder) {
  provider_.answering_model = "fake-model-2024";
  provider_.during.push_back([&] { clock_.Advance(absl::Seconds(3)); });
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(
      chats.Run(kUser, kConversation, {.content = "Hi there"}, Borrow(sink_)));

  ASSERT_THAT(sink_.Kinds(),
              ElementsAre(Kind::kMessage, Kind::kReply, Kind::kDelta,
                          Kind::kDelta, Kind::kDone));
  sink_.events.erase(sink_.events.begin() + 1);  // the reply: below
  const MessageRecord& sent_user = sink_.events[0].message;
  EXPECT_EQ(sent_user.role, Role::kUser);
  EXPECT_EQ(sent_user.content, "Hi there");
  EXPECT_EQ(sent_user.status, MessageStatus::kComplete);
  EXPECT_EQ(sent_user.conversation_id, kConversation);
  EXPECT_EQ(sent_user.created_at, start_);
  EXPECT_EQ(sink_.events[1].text, "Hel");
  EXPECT_EQ(sink_.events[1].offset, 0);
  EXPECT_EQ(sink_.events[2].text, "lo");
  EXPECT_EQ(sink_.events[2].offset, 3);
  const MessageRecord& done = sink_.events[3].message;
  EXPECT_EQ(done.role, Role::kAssistant);
  EXPECT_EQ(done.content, "Hello");
  EXPECT_EQ(done.status, MessageStatus::kComplete);
  EXPECT_EQ(done.model, "fake-model-2024") << "the model that answered";
  EXPECT_EQ(done.created_at, start_) << "stored when the reply started";
  EXPECT_EQ(done.updated_at, start_ + absl::Seconds(3)) << "and when it ended";
  EXPECT_GT(done.seq, sent_user.seq);
  EXPECT_EQ(sink_.events[3].usage.prompt_tokens, 7);
  EXPECT_EQ(sink_.events[3].usage.completion_tokens, 2);
  EXPECT_EQ(sink_.events[3].usage.total_tokens, 9);

  const std::vector<MessageRecord> stored = Stored();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].id, sent_user.id);
  EXPECT_EQ(stored[0].content, "Hi there");
  EXPECT_EQ(stored[1].id, done.id);
  EXPECT_EQ(stored[1].content, "Hello");
  EXPECT_EQ(stored[1].status, MessageStatus::kComplete);
  EXPECT_EQ(store_.Conversation(kUser, kConversation)->message_count, 2);
  EXPECT_EQ(provider_.requested_model, "fake-default");
}

TEST_F(ChatTest, AClientGoneAtTheFirstEventStillGetsItsReplyStored) {
  sink_.accept_message = false;
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  EXPECT_EQ(sink_.Kinds().front(), Kind::kMessage);
  EXPECT_EQ(provider_.calls, 1) << "the reply outlives the connection";
  const std::vector<MessageRecord> stored = Stored();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].content, "Hi");
  EXPECT_EQ(stored[1].content, "Hello");
  EXPECT_EQ(stored[1].status, MessageStatus::kComplete);
}

// --- Context ----------------------------------------------------------------

TEST_F(ChatTest, ContextIsPromptThenEarlierMessagesWithinBudgetThenNewOne) {
  // Oldest first. The new message "hi?" has 3 characters, so 24 of the 27
  // are left: newest first 12 + 12 = 24 fit (characters, not bytes: the
  // 12 "é" are 24 bytes), "abc" would make 27, so it and all before it are
  // dropped; the failed and the empty reply count for nothing.
  Earlier(Role::kUser, "z");
  Earlier(Role::kUser, "abc");
  const std::string twelve_e = Repeat("\xC3\xA9", 12);
  Earlier(Role::kAssistant, twelve_e);
  Earlier(Role::kAssistant, "a failed reply that is long",
          MessageStatus::kFailed);
  Earlier(Role::kAssistant, "", MessageStatus::kComplete);
  Earlier(Role::kAssistant, "newest-12-ch", MessageStatus::kIncomplete);
  Earlier(Role::kUser, "in another conversation", MessageStatus::kComplete,
          kSecondConversation);

  Chats chats(&store_, &provider_, &clock_,
              {.system_prompt = "Be brief.", .context_budget_chars = 27});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "hi?"}, Borrow(sink_)));
  EXPECT_THAT(provider_.context,
              ElementsAre("system: Be brief.", "assistant: " + twelve_e,
                          "assistant: newest-12-ch", "user: hi?"));
}

TEST_F(ChatTest, WithoutASystemPromptTheContextStartsWithTheOldestKept) {
  Earlier(Role::kSystem, "You are a pirate.");
  Earlier(Role::kUser, "first");
  Earlier(Role::kAssistant, "reply");
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(
      chats.Run(kUser, kConversation, {.content = "second"}, Borrow(sink_)));
  EXPECT_THAT(provider_.context,
              ElementsAre("system: You are a pirate.", "user: first",
                          "assistant: reply", "user: second"));
}

TEST_F(ChatTest, ContextReadsAtMostContextMaxMessages) {
  Earlier(Role::kUser, "one");
  Earlier(Role::kAssistant, "two");
  Earlier(Role::kUser, "three");
  Chats chats(&store_, &provider_, &clock_, {.context_max_messages = 2});
  ASSERT_OK(
      chats.Run(kUser, kConversation, {.content = "four"}, Borrow(sink_)));
  EXPECT_THAT(provider_.context,
              ElementsAre("assistant: two", "user: three", "user: four"));
}

TEST_F(ChatTest, ANewMessageThatFillsTheBudgetIsSentAlone) {
  Earlier(Role::kUser, "a");
  Chats chats(&store_, &provider_, &clock_,
              {.system_prompt = "Be brief.", .context_budget_chars = 5});
  ASSERT_OK(
      chats.Run(kUser, kConversation, {.content = "12345"}, Borrow(sink_)));
  EXPECT_THAT(provider_.context,
              ElementsAre("system: Be brief.", "user: 12345"));
}

TEST_F(ChatTest, EarlierRepliesOfThisChatEnterTheNextContext) {
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  ASSERT_OK(
      chats.Run(kUser, kConversation, {.content = "Again"}, Borrow(sink_)));
  EXPECT_THAT(provider_.context,
              ElementsAre("user: Hi", "assistant: Hello", "user: Again"));
}

// --- Failures and cancellation ----------------------------------------------

TEST_F(ChatTest, AProviderErrorStoresTheReplyFailedAndSendsAnError) {
  provider_.pieces = {"Partial "};
  provider_.error =
      absl::UnavailableError("the model provider reported an error");
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)))
      << "once the message is stored, outcomes go to the sink";

  ASSERT_THAT(sink_.Kinds(), ElementsAre(Kind::kMessage, Kind::kReply,
                                         Kind::kDelta, Kind::kError));
  EXPECT_THAT(sink_.events[3].error,
              StatusIs(absl::StatusCode::kUnavailable,
                       "the model provider reported an error"));
  const std::vector<MessageRecord> stored = Stored();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].content, "Hi") << "the user message is kept";
  EXPECT_EQ(stored[0].status, MessageStatus::kComplete);
  EXPECT_EQ(stored[1].role, Role::kAssistant);
  EXPECT_EQ(stored[1].status, MessageStatus::kFailed);
  EXPECT_EQ(stored[1].content, "Partial ") << "the text received so far";
  EXPECT_EQ(stored[1].model, "fake-default");
  EXPECT_TRUE(store_.Conversation(kUser, kConversation)->untitled)
      << "only a complete reply names the conversation";
}

TEST_F(ChatTest, AProviderTimeoutStoresTheReplyFailed) {
  provider_.pieces = {};
  provider_.error = absl::DeadlineExceededError("the model provider timed out");
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  ASSERT_THAT(sink_.Kinds(),
              ElementsAre(Kind::kMessage, Kind::kReply, Kind::kError));
  EXPECT_THAT(sink_.events[2].error,
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  ASSERT_EQ(Stored().size(), 2u);
  EXPECT_EQ(Stored()[1].status, MessageStatus::kFailed);
  EXPECT_EQ(Stored()[1].content, "");
}

TEST_F(ChatTest, AClientThatHangsUpDoesNotStopTheReply) {
  provider_.pieces = {"Hel", "lo", " world"};
  sink_.cancel_after_deltas = 2;
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  EXPECT_FALSE(provider_.stopped);
  EXPECT_THAT(sink_.Kinds(),
              ElementsAre(Kind::kMessage, Kind::kReply, Kind::kDelta,
                          Kind::kDelta, Kind::kDone))
      << "no delta is written to a client that is gone";
  const std::vector<MessageRecord> stored = Stored();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[1].status, MessageStatus::kComplete);
  EXPECT_EQ(stored[1].content, "Hello world");
  EXPECT_FALSE(store_.Conversation(kUser, kConversation)->untitled);
}

TEST_F(ChatTest, AClientThatStopsReadingDoesNotStopTheReply) {
  provider_.pieces = {"Hel", "lo", " world"};
  sink_.refuse_delta = 2;
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  EXPECT_THAT(sink_.Kinds(),
              ElementsAre(Kind::kMessage, Kind::kReply, Kind::kDelta,
                          Kind::kDelta, Kind::kDone));
  const std::vector<MessageRecord> stored = Stored();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[1].status, MessageStatus::kComplete);
  EXPECT_EQ(stored[1].content, "Hello world");
}

TEST_F(ChatTest, AContextThatCannotBeReadIsAnErrorBeforeTheStream) {
  // Run reads the context in the transaction that stores its messages.
  store_.InjectError(InMemoryMessageStore::Method::kStartReply,
                     absl::UnavailableError("database unavailable"));
  Chats chats(&store_, &provider_, &clock_, {});
  EXPECT_THAT(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(sink_.events, IsEmpty());
  EXPECT_THAT(Stored(), IsEmpty());
  EXPECT_EQ(provider_.calls, 0);
}

TEST_F(ChatTest, AContextThatCannotBeReadForAVersionFailsTheVersion) {
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Q1"}, Borrow(sink_)));
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Q2"}, Borrow(sink_)));
  const MessageRecord original = sink_.events.back().message;
  const int calls = provider_.calls;
  store_.InjectError(InMemoryMessageStore::Method::kContextPath,
                     absl::UnavailableError("database unavailable"));
  FakeSink again;
  ASSERT_OK(
      chats.Regenerate(kUser, kConversation, original.id, "", Borrow(again)));
  ASSERT_THAT(again.Kinds(), ElementsAre(Kind::kReply, Kind::kError));
  EXPECT_THAT(again.events[1].error, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(provider_.calls, calls);
  ASSERT_EQ(Stored().size(), 5u);
  EXPECT_EQ(Stored().back().status, MessageStatus::kFailed);
}

TEST_F(ChatTest, AReplyThatCannotBeStoredSendsAnErrorInsteadOfDone) {
  provider_.during.push_back([&] {
    store_.InjectError(InMemoryMessageStore::Method::kFinishReply,
                       absl::UnavailableError("database unavailable"));
  });
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  ASSERT_THAT(sink_.Kinds(),
              ElementsAre(Kind::kMessage, Kind::kReply, Kind::kDelta,
                          Kind::kDelta, Kind::kError));
  EXPECT_THAT(sink_.events[4].error, StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_EQ(Stored().size(), 2u) << "the user message is kept";
}

TEST_F(ChatTest, AUserMessageThatCannotBeStoredIsAnErrorBeforeTheStream) {
  store_.InjectError(InMemoryMessageStore::Method::kStartReply,
                     absl::UnavailableError("database unavailable"));
  Chats chats(&store_, &provider_, &clock_, {});
  EXPECT_THAT(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(sink_.events, IsEmpty());
  EXPECT_EQ(provider_.calls, 0);
}

// --- Answers before the stream ----------------------------------------------

TEST_F(ChatTest, TheStreamLimitIsPerUser) {
  // The provider's hooks run while a reply streams, so the limit is tested
  // without threads: A streams, B starts during A, C during B.
  Chats chats(&store_, &provider_, &clock_, {.max_streams_per_user = 2});
  FakeSink second_sink, third_sink, other_user_sink;
  absl::Status second, third, other_user;
  provider_.during.push_back([&] {
    second = chats.Run(kUser, kSecondConversation, {.content = "B"},
                       Borrow(second_sink));
  });
  provider_.during.push_back([&] {
    third =
        chats.Run(kUser, kConversation, {.content = "C"}, Borrow(third_sink));
    other_user = chats.Run(kOtherUser, kForeignConversation, {.content = "D"},
                           Borrow(other_user_sink));
  });
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "A"}, Borrow(sink_)));

  EXPECT_OK(second);
  EXPECT_THAT(third, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(RetryAfterOf(third), absl::Seconds(1));
  EXPECT_THAT(third_sink.events, IsEmpty());
  EXPECT_OK(other_user) << "another user has slots of their own";
  EXPECT_EQ(other_user_sink.Kinds().back(), Kind::kDone);

  std::vector<std::string> stored;
  for (const MessageRecord& m : Stored()) stored.push_back(m.content);
  EXPECT_THAT(stored, ElementsAre("A", "Hello")) << "C stored nothing";
  EXPECT_EQ(Stored(kSecondConversation).size(), 2u);

  // Every slot was given back when its reply ended.
  for (int i = 0; i < 3; ++i) {
    FakeSink again;
    EXPECT_OK(
        chats.Run(kUser, kConversation, {.content = "again"}, Borrow(again)));
  }
}

TEST_F(ChatTest, ARefusedRequestGivesItsSlotBack) {
  Chats chats(&store_, &provider_, &clock_, {.max_streams_per_user = 1});
  EXPECT_THAT(
      chats.Run(kUser, kForeignConversation, {.content = "Hi"}, Borrow(sink_)),
      StatusIs(absl::StatusCode::kNotFound));
  EXPECT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
}

TEST_F(ChatTest, TheModelNameIsAtMost128Characters) {
  Chats chats(&store_, &provider_, &clock_, {});
  absl::Status refused = chats.Run(
      kUser, kConversation, {.content = "Hi", .model = std::string(129, 'm')},
      Borrow(sink_));
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FieldsOf(refused), ElementsAre("model"));
  EXPECT_THAT(sink_.events, IsEmpty());
  EXPECT_THAT(Stored(), IsEmpty());
  EXPECT_EQ(provider_.calls, 0);

  const std::string longest(128, 'm');
  Chats allowing(&store_, &provider_, &clock_, {.allowed_models = {longest}});
  ASSERT_OK(allowing.Run(kUser, kConversation,
                         {.content = "Hi", .model = longest}, Borrow(sink_)));
  EXPECT_EQ(provider_.requested_model, longest);
  EXPECT_EQ(Stored().back().model, longest);
}

TEST_F(ChatTest, InvalidInputIsRefusedWithEveryViolation) {
  Chats chats(&store_, &provider_, &clock_, {});
  for (const std::string& content :
       {std::string(), std::string("a\0b", 3), std::string("\xC3\x28"),
        std::string(100001, 'a')}) {
    absl::Status refused =
        chats.Run(kUser, kConversation, {.content = content}, Borrow(sink_));
    EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(FieldsOf(refused), ElementsAre("content"));
  }
  absl::Status both =
      chats.Run(kUser, kConversation,
                {.content = "", .model = std::string(129, 'm')}, Borrow(sink_));
  EXPECT_THAT(FieldsOf(both), UnorderedElementsAre("content", "model"));
  EXPECT_THAT(sink_.events, IsEmpty());
  EXPECT_THAT(Stored(), IsEmpty());
  EXPECT_EQ(provider_.calls, 0);
}

TEST_F(ChatTest, AnotherUsersOrAMalformedConversationIsNotFound) {
  Chats chats(&store_, &provider_, &clock_, {});
  EXPECT_THAT(
      chats.Run(kUser, kForeignConversation, {.content = "Hi"}, Borrow(sink_)),
      StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(chats.Run(kUser, "not-a-uuid", {.content = "Hi"}, Borrow(sink_)),
              StatusIs(absl::StatusCode::kNotFound, "conversation not found"));
  EXPECT_THAT(sink_.events, IsEmpty());
  EXPECT_EQ(provider_.calls, 0);
  EXPECT_THAT(store_.StoredMessages(kOtherUser, kForeignConversation),
              IsEmpty());
}

// --- Titles -----------------------------------------------------------------

TEST_F(ChatTest, TheFirstCompleteReplyNamesAnUntitledConversation) {
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation,
                      {.content = "How do   I\nbake bread?"}, Borrow(sink_)));
  auto conversation = store_.Conversation(kUser, kConversation);
  EXPECT_FALSE(conversation->untitled);
  EXPECT_EQ(conversation->title, "How do I bake bread?");

  ASSERT_OK(
      chats.Run(kUser, kConversation, {.content = "And rye?"}, Borrow(sink_)));
  EXPECT_EQ(store_.Title(kUser, kConversation), "How do I bake bread?")
      << "named once";
}

TEST_F(ChatTest, TheTitleComesFromTheFirstUserMessage) {
  Earlier(Role::kSystem, "You are a travel agent.");
  Earlier(Role::kUser, "Plan a trip to Lisbon");
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "and Porto?"},
                      Borrow(sink_)));
  EXPECT_EQ(store_.Title(kUser, kConversation), "Plan a trip to Lisbon");
}

TEST_F(ChatTest, ATitledConversationKeepsItsTitle) {
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(
      chats.Run(kUser, kTitledConversation, {.content = "Hi"}, Borrow(sink_)));
  EXPECT_EQ(sink_.Kinds().back(), Kind::kDone);
  EXPECT_EQ(store_.Title(kUser, kTitledConversation), "My own title");
}

TEST_F(ChatTest, AConversationThatCannotBeNamedStillGetsDone) {
  store_.InjectError(InMemoryMessageStore::Method::kNameUntitled,
                     absl::UnavailableError("database unavailable"));
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  EXPECT_EQ(sink_.Kinds().back(), Kind::kDone);
  EXPECT_TRUE(store_.Conversation(kUser, kConversation)->untitled);
}

}  // namespace
}  // namespace chat::message

namespace chat::message {
namespace {

// --- Conversation trees -----------------------------------------------------

TEST_F(ChatTest, TheContextIsThePathFromTheRootAndNoOtherBranch) {
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Q1"}, Borrow(sink_)));
  const std::string q1 = sink_.events[0].message.id;
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "old branch"},
                      Borrow(sink_)));
  // A new version of the second question: a sibling of "old branch".
  const std::string a1 = Stored()[1].id;
  FakeSink versioned;
  ASSERT_OK(chats.Run(kUser, kConversation,
                      {.content = "new branch", .parent_id = a1},
                      Borrow(versioned)));
  EXPECT_THAT(provider_.context,
              ElementsAre("user: Q1", "assistant: Hello", "user: new branch"));
  ASSERT_EQ(versioned.events[0].kind, Kind::kMessage);
  EXPECT_EQ(versioned.events[0].message.parent_id, a1);
  EXPECT_EQ(versioned.events[0].message.sibling_index, 1);
  EXPECT_EQ(versioned.events[0].message.sibling_count, 2);
  ASSERT_EQ(versioned.events.back().kind, Kind::kDone);
  EXPECT_EQ(versioned.events.back().message.parent_id,
            versioned.events[0].message.id);
  EXPECT_EQ(store_.ActiveBranch(kUser, kConversation).back(),
            versioned.events.back().message.id);
  EXPECT_NE(q1, "");
}

TEST_F(ChatTest, RegenerateMakesASiblingWithTheSameContext) {
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Q1"}, Borrow(sink_)));
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Q2"}, Borrow(sink_)));
  const MessageRecord original = sink_.events.back().message;
  const std::vector<std::string> first_context = provider_.context;

  provider_.pieces = {"Another ", "answer"};
  FakeSink again;
  ASSERT_OK(
      chats.Regenerate(kUser, kConversation, original.id, "", Borrow(again)));
  EXPECT_THAT(again.Kinds(), ElementsAre(Kind::kReply, Kind::kDelta,
                                         Kind::kDelta, Kind::kDone))
      << "no user message";
  EXPECT_EQ(provider_.context, first_context);
  const MessageRecord version = again.events.back().message;
  EXPECT_EQ(version.content, "Another answer");
  EXPECT_EQ(version.parent_id, original.parent_id);
  EXPECT_EQ(version.sibling_index, 1);
  EXPECT_EQ(version.sibling_count, 2);
  EXPECT_EQ(store_.ActiveBranch(kUser, kConversation).back(), version.id);
  EXPECT_EQ(Stored().size(), 5u);
}

TEST_F(ChatTest, RegenerateTakesOnlyAnAssistantMessageOfTheCaller) {
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Q1"}, Borrow(sink_)));
  const MessageRecord question = sink_.events[0].message;
  const MessageRecord reply = sink_.events.back().message;
  FakeSink none;
  EXPECT_THAT(
      chats.Regenerate(kUser, kConversation, question.id, "", Borrow(none)),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      chats.Regenerate(kOtherUser, kConversation, reply.id, "", Borrow(none)),
      StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(
      chats.Regenerate(kUser, kSecondConversation, reply.id, "", Borrow(none)),
      StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(chats.Regenerate(kUser, kConversation, "nope", "", Borrow(none)),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(none.events, IsEmpty());
  EXPECT_EQ(provider_.calls, 1);
}

TEST_F(ChatTest, AChatUnderAMissingParentIsNotFoundAndStoresNothing) {
  Chats chats(&store_, &provider_, &clock_, {});
  EXPECT_THAT(chats.Run(kUser, kConversation,
                        {.content = "Hi",
                         .parent_id = "0190a000-0000-7000-8000-0000000000ff"},
                        Borrow(sink_)),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(chats.Run(kUser, kConversation,
                        {.content = "Hi", .parent_id = "bad"}, Borrow(sink_)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Stored(), IsEmpty());
  EXPECT_EQ(provider_.calls, 0);
}

}  // namespace
}  // namespace chat::message

namespace chat::message {
namespace {

// --- Durable replies --------------------------------------------------------

TEST_F(ChatTest, TheReplyIsStoredInProgressBeforeTheFirstDelta) {
  MessageStatus status_at_first_piece = MessageStatus::kComplete;
  provider_.during.push_back(
      [&] { status_at_first_piece = Stored().back().status; });
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  ASSERT_EQ(sink_.events[1].kind, Kind::kReply);
  const MessageRecord& reply = sink_.events[1].message;
  EXPECT_EQ(reply.status, MessageStatus::kInProgress);
  EXPECT_EQ(reply.content, "");
  EXPECT_EQ(reply.parent_id, sink_.events[0].message.id);
  EXPECT_EQ(status_at_first_piece, MessageStatus::kInProgress);
  EXPECT_EQ(sink_.events.back().message.id, reply.id) << "done is that one";
}

TEST_F(ChatTest, OffsetsCountCharactersNotBytes) {
  provider_.pieces = {"\xC3\xA9t\xC3\xA9", " ok"};
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  ASSERT_EQ(sink_.events[3].kind, Kind::kDelta);
  EXPECT_EQ(sink_.events[3].offset, 3) << "three characters, five bytes";
}

TEST_F(ChatTest, SaveRepliesStoresTheTextWhileItGrows) {
  // A provider that lets the service store the reply between two pieces.
  class Watching final : public BlockingProvider {
   public:
    explicit Watching(std::function<std::string()> save_and_read)
        : save_and_read_(std::move(save_and_read)) {}
    const std::string& default_model() const override { return model_; }
    absl::StatusOr<ProviderReply> Complete(
        const std::string& model, const std::vector<ProviderMessage>& messages,
        const std::function<bool(absl::string_view)>& on_text,
        const std::function<bool()>& should_stop) override {
      on_text("one ");
      on_text("two ");
      seen = save_and_read_();
      on_text("three");
      return ProviderReply{.model = model};
    }
    std::string seen;

   private:
    std::string model_ = "m";
    std::function<std::string()> save_and_read_;
  };
  Chats* chats = nullptr;
  Watching watching([&] {
    chats->SaveReplies();
    return Stored().back().content;
  });
  Chats watched(&store_, &watching, &clock_, {});
  chats = &watched;
  FakeSink sink;
  ASSERT_OK(watched.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink)));
  EXPECT_EQ(watching.seen, "one two ") << "stored as it grew";
  EXPECT_EQ(Stored().back().content, "one two three");
  EXPECT_EQ(Stored().back().status, MessageStatus::kComplete);
}

TEST_F(ChatTest, AReplyCancelledElsewhereStopsAtItsNextSave) {
  provider_.pieces = {"one ", "two ", "three ", "four"};
  Chats chats(&store_, &provider_, &clock_, {});
  provider_.during.push_back([&] {
    // Another replica cancels: the stored reply is incomplete at once.
    const MessageRecord reply = Stored().back();
    ASSERT_OK(store_.CancelReply(kUser, kConversation, reply.id, clock_.Now()));
    chats.SaveReplies();  // learns that the reply is no longer its own
  });
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  EXPECT_TRUE(provider_.stopped);
  const MessageRecord reply = Stored().back();
  EXPECT_EQ(reply.status, MessageStatus::kIncomplete);
  EXPECT_EQ(sink_.events.back().kind, Kind::kDone);
  EXPECT_EQ(sink_.events.back().message.status, MessageStatus::kIncomplete);
}

TEST_F(ChatTest, StoppingTheServiceEndsRepliesIncomplete) {
  provider_.pieces = {"one ", "two"};
  Chats chats(&store_, &provider_, &clock_, {});
  provider_.during.push_back([&] { chats.Stop(); });
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  EXPECT_EQ(Stored().back().status, MessageStatus::kIncomplete);
}

TEST_F(ChatTest,
       AModelOutsideTheConfiguredOnesIsRefusedBeforeAnythingIsStored) {
  Chats chats(&store_, &provider_, &clock_, {.allowed_models = {"small"}});
  absl::Status refused = chats.Run(
      kUser, kConversation, {.content = "Hi", .model = "huge"}, Borrow(sink_));
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FieldsOf(refused), ElementsAre("model"));
  EXPECT_THAT(Stored(), IsEmpty());
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi", .model = "small"},
                      Borrow(sink_)));
  FakeSink default_model;
  ASSERT_OK(chats.Run(kUser, kConversation,
                      {.content = "Hi", .model = "fake-default"},
                      Borrow(default_model)));
}

TEST_F(ChatTest, TheLimitCountsRepliesInProgressOfEveryReplica) {
  // Another replica (owner 99) has one reply in progress for this user.
  const absl::Time now = clock_.Now();
  ASSERT_OK(store_.StartReply(kUser, std::nullopt, std::nullopt,
                              {.id = NewUuidV7(now),
                               .conversation_id = kSecondConversation,
                               .role = Role::kAssistant,
                               .status = MessageStatus::kInProgress,
                               .created_at = now,
                               .updated_at = now},
                              std::string(), 99, 10, ContextLimits{}));
  Chats chats(&store_, &provider_, &clock_, {.max_streams_per_user = 1});
  EXPECT_THAT(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(Stored(), IsEmpty());
}

TEST_F(ChatTest, StreamReplyOfAnEndedReplySendsTheRestAndDone) {
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  const std::string id = Stored().back().id;
  FakeSink resumed;
  ASSERT_OK(chats.StreamReply(kUser, kConversation, id, 2, Borrow(resumed)));
  ASSERT_THAT(resumed.Kinds(), ElementsAre(Kind::kDelta, Kind::kDone));
  EXPECT_EQ(resumed.events[0].text, "llo");
  EXPECT_EQ(resumed.events[0].offset, 2);
  FakeSink beyond;
  ASSERT_OK(chats.StreamReply(kUser, kConversation, id, 50, Borrow(beyond)));
  EXPECT_THAT(beyond.Kinds(), ElementsAre(Kind::kDone));
  FakeSink none;
  EXPECT_THAT(chats.StreamReply(kUser, kConversation, id, -1, Borrow(none)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(chats.StreamReply(kOtherUser, kConversation, id, 0, Borrow(none)),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ChatTest, StreamReplyFollowsAnotherReplicasReplyUntilItEnds) {
  // A reply in progress of another replica (owner 7), with text stored.
  const absl::Time now = clock_.Now();
  absl::StatusOr<StartedReply> started =
      store_.StartReply(kUser, std::nullopt, std::nullopt,
                        {.id = NewUuidV7(now),
                         .conversation_id = kConversation,
                         .role = Role::kAssistant,
                         .status = MessageStatus::kInProgress,
                         .created_at = now,
                         .updated_at = now},
                        std::string(), 7, 10, ContextLimits{});
  ASSERT_OK(started);
  const std::string id = started->reply.id;
  auto save = [&](const std::string& text) {
    absl::StatusOr<absl::flat_hash_set<std::string>> ours =
        store_.SaveReplyTexts(7, {{kUser, kConversation, id, text}}, now);
    ASSERT_OK(ours);
    EXPECT_TRUE(ours->contains(id));
  };
  save("Hel");
  Chats chats(&store_, &provider_, &clock_, {});
  FakeSink follower;
  ASSERT_OK(chats.StreamReply(kUser, kConversation, id, 1, Borrow(follower)));
  chats.FollowReplies();  // nothing new
  save("Hello");
  chats.FollowReplies();
  ASSERT_OK(store_.FinishReply(kUser, kConversation, id, 7, "Hello!",
                               MessageStatus::kComplete, "m", now));
  chats.FollowReplies();
  chats.FollowReplies();  // ended: nothing more
  ASSERT_THAT(follower.Kinds(), ElementsAre(Kind::kDelta, Kind::kDelta,
                                            Kind::kDelta, Kind::kDone));
  std::string joined = "H";
  for (int i = 0; i < 3; ++i) joined += follower.events[i].text;
  EXPECT_EQ(joined, "Hello!");
  EXPECT_EQ(follower.events[1].offset, 3);
  EXPECT_EQ(follower.events[2].offset, 5);
}

TEST_F(ChatTest, StreamReplyFollowsAReplyGeneratedHereLive) {
  provider_.pieces = {"Hel", "lo", " you"};
  Chats chats(&store_, &provider_, &clock_, {});
  FakeSink from_start, from_four;
  provider_.during.push_back([&] {
    // The first piece has not arrived: a follower from 0 and one from 4.
    const std::string id = Stored().back().id;
    ASSERT_OK(
        chats.StreamReply(kUser, kConversation, id, 0, Borrow(from_start)));
    ASSERT_OK(
        chats.StreamReply(kUser, kConversation, id, 4, Borrow(from_four)));
  });
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  ASSERT_THAT(from_start.Kinds(), ElementsAre(Kind::kDelta, Kind::kDelta,
                                              Kind::kDelta, Kind::kDone));
  EXPECT_EQ(from_start.events[2].text, " you");
  EXPECT_EQ(from_start.events[2].offset, 5);
  // From character 4: the "o" of "lo", then " you".
  ASSERT_THAT(from_four.Kinds(),
              ElementsAre(Kind::kDelta, Kind::kDelta, Kind::kDone));
  EXPECT_EQ(from_four.events[0].text, "o");
  EXPECT_EQ(from_four.events[0].offset, 4);
  EXPECT_EQ(from_four.events[1].text, " you");
  EXPECT_EQ(from_four.events[2].message.content, "Hello you");
  EXPECT_EQ(from_four.events[2].message.status, MessageStatus::kComplete);
}

TEST_F(ChatTest, SaveRepliesSignsLifeForAnUnchangedReply) {
  provider_.pieces = {"Hel", "lo"};
  Chats chats(&store_, &provider_, &clock_, {});
  absl::Time stored_at;
  provider_.during.push_back([&] {
    clock_.Advance(absl::Seconds(3));
    chats.SaveReplies();  // no text yet: only the sign of life
    stored_at = Stored().back().updated_at;
  });
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  EXPECT_EQ(stored_at, ToMicroseconds(clock_.Now()));
  EXPECT_FALSE(provider_.stopped);
  EXPECT_EQ(Stored().back().status, MessageStatus::kComplete);
}

TEST_F(ChatTest, SaveRepliesOnlyReadsAnUnchangedReplyStoredLately) {
  provider_.pieces = {"Hel", "lo"};
  Chats chats(&store_, &provider_, &clock_, {.sign_of_life = absl::Seconds(2)});
  absl::Time started_at, after_one, after_three;
  provider_.during.push_back([&] {
    started_at = Stored().back().updated_at;
    clock_.Advance(absl::Seconds(1));
    chats.SaveReplies();  // stored by the start a second ago: a read
    after_one = Stored().back().updated_at;
    clock_.Advance(absl::Seconds(2));
    chats.SaveReplies();  // three seconds: a sign of life
    after_three = Stored().back().updated_at;
  });
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  EXPECT_EQ(after_one, started_at);
  EXPECT_EQ(after_three, started_at + absl::Seconds(3));
  EXPECT_FALSE(provider_.stopped) << "still ours after the read";
  EXPECT_EQ(Stored().back().status, MessageStatus::kComplete);
  EXPECT_EQ(Stored().back().content, "Hello");
}

TEST_F(ChatTest, CancelOfAnEndedReplyAnswersItUnchanged) {
  Chats chats(&store_, &provider_, &clock_, {});
  ASSERT_OK(chats.Run(kUser, kConversation, {.content = "Hi"}, Borrow(sink_)));
  absl::StatusOr<MessageRecord> cancelled =
      chats.CancelReply(kUser, kConversation, Stored().back().id);
  ASSERT_OK(cancelled);
  EXPECT_EQ(cancelled->status, MessageStatus::kComplete);
  EXPECT_EQ(cancelled->content, "Hello");
}

}  // namespace
}  // namespace chat::message
