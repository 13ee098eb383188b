// Transfers over the in-memory store: the rules of an import (every item
// checked, all or nothing, known conversations skipped, trees parents
// first) and the bounds on how many transfers run at once.

#include "services/message/transfers.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/errors.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/message/in_memory_transfer_store.h"

namespace chat::message {
namespace {

using ::chat::testing::IsOk;
using ::chat::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kUser[] = "0190f3a0-0000-7000-8000-00000000a11c";
constexpr char kC1[] = "0190f3a0-0000-7000-8000-0000000000c1";
constexpr char kC2[] = "0190f3a0-0000-7000-8000-0000000000c2";
constexpr char kM1[] = "0190f3a0-0000-7000-8000-0000000000a1";
constexpr char kM2[] = "0190f3a0-0000-7000-8000-0000000000a2";
constexpr char kM3[] = "0190f3a0-0000-7000-8000-0000000000a3";
constexpr char kM4[] = "0190f3a0-0000-7000-8000-0000000000a4";

const absl::Time kNow = absl::FromUnixSeconds(1767225600);  // 2026-01-01

class VectorSource final : public ImportSource {
 public:
  explicit VectorSource(std::vector<ImportItem> items,
                        absl::Status end = absl::OkStatus())
      : items_(std::move(items)), end_(std::move(end)) {}
  absl::StatusOr<std::optional<ImportItem>> Next() override {
    if (next_ < items_.size()) return items_[next_++];
    if (!end_.ok()) return end_;
    return std::nullopt;
  }

 private:
  std::vector<ImportItem> items_;
  absl::Status end_;
  size_t next_ = 0;
};

ImportItem Conversation(const std::string& id, const std::string& leaf = "",
                        const std::string& title = "Trip") {
  return {
      "line " + id.substr(id.size() - 2),
      ImportedConversation{.id = id, .title = title, .active_leaf_id = leaf}};
}

ImportItem Message(const std::string& id, const std::string& parent,
                   const std::string& role = "user",
                   const std::string& content = "hello") {
  return {"message " + id.substr(id.size() - 2),
          ImportedMessage{.id = id,
                          .parent_id = parent,
                          .role = role,
                          .content = content,
                          .created_at = kNow + absl::Seconds(1)}};
}

class TransfersTest : public ::testing::Test {
 protected:
  absl::StatusOr<Transfers::Counts> Import(
      std::vector<ImportItem> items, absl::Status end = absl::OkStatus()) {
    VectorSource source(std::move(items), std::move(end));
    return transfers_.Import(kUser, source);
  }

  InMemoryTransferStore store_;
  TransferSlots slots_{2};
  FakeClock clock_{kNow};
  Transfers transfers_{&store_, &slots_, &clock_, {.per_user = 2, .batch = 2}};
};

TEST_F(TransfersTest, StoresATreeWithItsCountsAndLeaf) {
  absl::StatusOr<Transfers::Counts> counts = Import({
      Conversation(kC1, kM3),
      Message(kM1, ""),
      Message(kM2, kM1, "assistant", "first answer"),
      Message(kM3, kM1, "assistant", "second answer"),  // a sibling of kM2
      Message(kM4, kM2),
  });
  ASSERT_THAT(counts, IsOk());
  EXPECT_EQ(counts->imported, 1);
  EXPECT_EQ(counts->skipped, 0);
  auto stored = store_.Of(kUser);
  ASSERT_TRUE(stored.contains(kC1));
  const auto& c = stored.at(kC1);
  EXPECT_EQ(c.conversation.message_count, 4);
  EXPECT_EQ(c.conversation.active_leaf_id, kM3);
  EXPECT_THAT(c.active_path, ElementsAre(kM1, kM3)) << "root first";
  EXPECT_EQ(c.conversation.created_at, kNow) << "absent times are now";
  EXPECT_EQ(c.conversation.last_message_at, kNow + absl::Seconds(1));
  EXPECT_EQ(c.conversation.updated_at, kNow + absl::Seconds(1));
  std::vector<int64_t> seqs;
  for (const MessageRecord& m : c.messages) seqs.push_back(m.seq);
  EXPECT_THAT(seqs, ElementsAre(1, 2, 3, 4)) << "batches of 2, in order";
  EXPECT_EQ(c.messages[3].parent_id, kM2);
  EXPECT_EQ(c.messages[1].role, Role::kAssistant);
}

TEST_F(TransfersTest, WithoutALeafTheLastMessageIsTheLeaf) {
  ASSERT_THAT(Import({Conversation(kC1), Message(kM1, ""), Message(kM2, kM1)}),
              IsOk());
  EXPECT_EQ(store_.Of(kUser).at(kC1).conversation.active_leaf_id, kM2);
}

TEST_F(TransfersTest, AnUntitledConversationGetsTheDefaultTitle) {
  ASSERT_THAT(Import({Conversation(kC1, "", "")}), IsOk());
  const ConversationRecord c = store_.Of(kUser).at(kC1).conversation;
  EXPECT_EQ(c.title, "New Chat");
  EXPECT_TRUE(c.untitled);
  EXPECT_EQ(c.message_count, 0);
  EXPECT_EQ(c.active_leaf_id, "");
}

TEST_F(TransfersTest, AReplyInProgressIsStoredIncomplete) {
  ImportItem reply = Message(kM2, kM1, "assistant", "half an ans");
  std::get<ImportedMessage>(reply.item).status = "in_progress";
  ASSERT_THAT(Import({Conversation(kC1), Message(kM1, ""), reply}), IsOk());
  EXPECT_EQ(store_.Of(kUser).at(kC1).messages[1].status,
            MessageStatus::kIncomplete);
}

TEST_F(TransfersTest, TheSameItemsTwiceStoreNothingTheSecondTime) {
  std::vector<ImportItem> items = {Conversation(kC1), Message(kM1, ""),
                                   Conversation(kC2), Message(kM1, "")};
  ASSERT_THAT(Import(items), IsOk());
  absl::StatusOr<Transfers::Counts> again = Import(items);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->imported, 0);
  EXPECT_EQ(again->skipped, 2);
  EXPECT_EQ(store_.Of(kUser).size(), 2u);
  EXPECT_EQ(store_.Of(kUser).at(kC1).messages.size(), 1u);
}

TEST_F(TransfersTest, ABadItemStoresNothingAndNamesItsSource) {
  struct Case {
    std::string name;
    std::vector<ImportItem> items;
    std::string source;
    std::string field;
  };
  ImportItem bad_status = Message(kM2, kM1);
  std::get<ImportedMessage>(bad_status.item).status = "done";
  ImportItem bad_time = Message(kM2, kM1);
  std::get<ImportedMessage>(bad_time.item).created_at =
      absl::FromUnixSeconds(-5000000000);  // 1811
  ImportItem bad_metadata = Conversation(kC2);
  std::get<ImportedConversation>(bad_metadata.item).metadata[""] = "x";
  const std::vector<Case> cases = {
      {"message first", {Message(kM1, "")}, "message a1", ""},
      {"bad conversation id",
       {Conversation("c1")},
       "line c1",
       "conversation.id"},
      {"parent later",
       {Conversation(kC1), Message(kM1, kM2), Message(kM2, "")},
       "message a1",
       "message.parent_id"},
      {"parent in another conversation",
       {Conversation(kC1), Message(kM1, ""), Conversation(kC2),
        Message(kM2, kM1)},
       "message a2",
       "message.parent_id"},
      {"nil id",
       {Conversation(kC1), Message("00000000-0000-0000-0000-000000000000", "")},
       "message 00",
       "message.id"},
      {"repeated id",
       {Conversation(kC1), Message(kM1, ""), Message(kM1, "")},
       "message a1",
       "message.id"},
      {"role",
       {Conversation(kC1), Message(kM1, "", "tool")},
       "message a1",
       "message.role"},
      {"empty content",
       {Conversation(kC1), Message(kM1, "", "user", "")},
       "message a1",
       "message.content"},
      {"bad UTF-8",
       {Conversation(kC1), Message(kM1, "", "user", "a\xff")},
       "message a1",
       "message.content"},
      {"too long",
       {Conversation(kC1), Message(kM1, "", "user", std::string(100001, 'x'))},
       "message a1",
       "message.content"},
      {"status",
       {Conversation(kC1), Message(kM1, ""), bad_status},
       "message a2",
       "message.status"},
      {"time",
       {Conversation(kC1), Message(kM1, ""), bad_time},
       "message a2",
       "message.created_at"},
      {"metadata",
       {Conversation(kC1), bad_metadata},
       "line c2",
       "conversation.metadata"},
      {"leaf not in the conversation",
       {Conversation(kC1, kM2), Message(kM1, ""), Conversation(kC2)},
       "line c1",
       "conversation.active_leaf_id"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<Transfers::Counts> counts = Import(c.items);
    ASSERT_THAT(counts, StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr(c.source + ": ")));
    if (!c.field.empty()) {
      std::vector<FieldViolation> violations = ViolationsOf(counts.status());
      ASSERT_FALSE(violations.empty());
      EXPECT_EQ(violations[0].field, c.field);
    }
    EXPECT_TRUE(store_.Of(kUser).empty()) << "nothing is stored";
  }
}

TEST_F(TransfersTest, ABrokenUploadStoresNothing) {
  EXPECT_THAT(Import({Conversation(kC1), Message(kM1, "")},
                     absl::CancelledError("gone")),
              StatusIs(absl::StatusCode::kCancelled));
  EXPECT_TRUE(store_.Of(kUser).empty());
}

// Holds an import open until released.
class BlockingSource final : public ImportSource {
 public:
  absl::StatusOr<std::optional<ImportItem>> Next() override {
    started.store(true);
    while (!release.load()) std::this_thread::yield();
    return std::nullopt;
  }
  std::atomic<bool> started{false};
  std::atomic<bool> release{false};
};

TEST_F(TransfersTest, AUserRunsAtMostPerUserTransfersAtOnce) {
  InMemoryTransferStore store;
  TransferSlots slots(8);
  Transfers transfers(&store, &slots, &clock_, {.per_user = 1});
  BlockingSource blocking;
  std::thread running(
      [&] { EXPECT_THAT(transfers.Import(kUser, blocking), IsOk()); });
  while (!blocking.started.load()) std::this_thread::yield();
  VectorSource empty({});
  EXPECT_THAT(transfers.Import(kUser, empty),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(transfers.Import("0190f3a0-0000-7000-8000-000000000b0b", empty),
              IsOk())
      << "another user is not counted";
  blocking.release.store(true);
  running.join();
  EXPECT_THAT(transfers.Import(kUser, empty), IsOk()) << "the slot is free";
}

TEST_F(TransfersTest, TheProcessRunsAtMostItsSlots) {
  TransferSlots slots(1);
  Transfers transfers(&store_, &slots, &clock_, {.per_user = 4});
  BlockingSource blocking;
  std::thread running(
      [&] { EXPECT_THAT(transfers.Import(kUser, blocking), IsOk()); });
  while (!blocking.started.load()) std::this_thread::yield();
  VectorSource empty({});
  absl::StatusOr<Transfers::Counts> busy =
      transfers.Import("0190f3a0-0000-7000-8000-000000000b0b", empty);
  EXPECT_THAT(busy, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_TRUE(RetryAfterOf(busy.status()).has_value());
  blocking.release.store(true);
  running.join();
}

TEST(TransferSlotsTest, ManyThreadsNeverTakeMoreThanTheSlots) {
  constexpr int kSlots = 3;
  TransferSlots slots(kSlots);
  std::atomic<int> holding{0};
  std::atomic<int> most{0};
  std::atomic<int> taken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (!slots.TryTake()) continue;
        ++taken;
        int now = ++holding;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        --holding;
        slots.Give();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_LE(most.load(), kSlots);
  EXPECT_GT(taken.load(), 0);
  for (int i = 0; i < kSlots; ++i)
    EXPECT_TRUE(slots.TryTake()) << "all given back";
  EXPECT_FALSE(slots.TryTake());
}

}  // namespace
}  // namespace chat::message
