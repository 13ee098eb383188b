// Export and import in PostgreSQL (services/message/transfer_storage.h):
// what an import stores reads back through an export and through the
// message service's own listings, an import is all or nothing, the same
// file twice stores nothing the second time (also when both run at once),
// and a user's transfers are counted across replicas. Needs
// TEST_DATABASE_URL (skipped without).

#include "services/message/transfer_storage.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/db.h"
#include "common/ids.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "services/message/message_storage.h"
#include "services/message/transfers.h"
#include "tests/integration/database_test.h"
#include "tests/integration/test_database.h"

namespace chat::message {
namespace {

using ::chat::testing::IsOk;
using ::chat::testing::StatusIs;
using ::testing::ElementsAre;

constexpr char kAlice[] = "0190f3a0-0000-7000-8000-00000000a11c";
constexpr char kBob[] = "0190f3a0-0000-7000-8000-000000000b0b";

const absl::Time kT0 = absl::FromUnixSeconds(1767225600);  // 2026-01-01

struct Exported {
  ConversationRecord conversation;
  std::vector<MessageRecord> messages;
  int chunks = 0;  // message batches
};

class CollectingSink final : public ExportSink {
 public:
  bool Conversation(const ConversationRecord& c) override {
    all.push_back({c, {}});
    return true;
  }
  bool Messages(const std::vector<MessageRecord>& messages) override {
    all.back().messages.insert(all.back().messages.end(), messages.begin(),
                               messages.end());
    ++all.back().chunks;
    return true;
  }
  std::vector<Exported> all;
};

class VectorSource final : public ImportSource {
 public:
  explicit VectorSource(std::vector<ImportItem> items)
      : items_(std::move(items)) {}
  absl::StatusOr<std::optional<ImportItem>> Next() override {
    if (next_ < items_.size()) return items_[next_++];
    return std::nullopt;
  }

 private:
  std::vector<ImportItem> items_;
  size_t next_ = 0;
};

// An export read back as the items of an import, as the gateway makes them
// from our ndjson.
std::vector<ImportItem> AsItems(const std::vector<Exported>& exported) {
  std::vector<ImportItem> items;
  for (const Exported& e : exported) {
    const ConversationRecord& c = e.conversation;
    items.push_back({"line", ImportedConversation{
                                 .id = c.id,
                                 .title = c.title,
                                 .metadata = c.metadata,
                                 .archived = c.archived,
                                 .pinned = c.pinned,
                                 .created_at = c.created_at,
                                 .updated_at = c.updated_at,
                                 .active_leaf_id = c.active_leaf_id,
                             }});
    for (const MessageRecord& m : e.messages) {
      items.push_back(
          {"message", ImportedMessage{
                          .id = m.id,
                          .parent_id = m.parent_id,
                          .role = std::string(RoleName(m.role)),
                          .content = m.content,
                          .status = std::string(StatusName(m.status)),
                          .model = m.model,
                          .metadata = m.metadata,
                          .created_at = m.created_at,
                          .updated_at = m.updated_at,
                      }});
    }
  }
  return items;
}

class TransferStorageTest : public ::chat::testing::DatabaseTest {
 protected:
  void SetUpDatabase() override {
    db_->AddUser(kAlice, "alice");
    db_->AddUser(kBob, "bob");
    pool_ = NewPool();
    messages_ = std::make_unique<MessageStorage>(pool_.get());
    storage_ = std::make_unique<TransferStorage>(pool_.get());
  }

  std::unique_ptr<DbPool> NewPool() {
    return DbPool::Create(
        {.url = db_->RoleUrl("chat_message"),
         .size = 4,
         .statements = WithStatements(MessageStorage::Statements(),
                                      TransferStorage::Statements())});
  }

  std::vector<Exported> Export(const std::string& user, int batch = 128) {
    TransferSlots slots(4);
    Transfers transfers(storage_.get(), &slots, &clock_, {.batch = batch});
    CollectingSink sink;
    EXPECT_THAT(transfers.Export(user, sink), IsOk());
    return sink.all;
  }

  absl::StatusOr<Transfers::Counts> Import(const std::string& user,
                                           std::vector<ImportItem> items) {
    Transfers transfers(storage_.get(), &slots_, &clock_, {.per_user = 8});
    VectorSource source(std::move(items));
    return transfers.Import(user, source);
  }

  std::vector<std::string> Branch(const std::string& user,
                                  const std::string& conversation,
                                  chat::message::Branch branch) {
    absl::StatusOr<std::vector<MessageRecord>> listed = messages_->List(
        user, conversation, branch, false, std::nullopt, 200, 1 << 30);
    EXPECT_THAT(listed, IsOk());
    std::vector<std::string> ids;
    if (listed.ok())
      for (const MessageRecord& m : *listed) ids.push_back(m.id);
    return ids;
  }

  // A conversation with branches: q, two answers to it, an edit of q with
  // its answer; the active branch is the first answer's.
  std::vector<ImportItem> Tree(const std::string& conversation,
                               std::vector<std::string>& ids) {
    for (int i = 0; i < 5; ++i) ids.push_back(NewUuidV7());
    auto message = [&](int i, const std::string& parent, const char* role,
                       const char* content) {
      return ImportItem{"m" + std::to_string(i),
                        ImportedMessage{.id = ids[i],
                                        .parent_id = parent,
                                        .role = role,
                                        .content = content,
                                        .model = role[0] == 'a' ? "gpt-x" : "",
                                        .metadata = {{"k", "v"}},
                                        .created_at = kT0 + absl::Seconds(i),
                                        .updated_at = kT0 + absl::Seconds(i)}};
    };
    return {
        {"c", ImportedConversation{.id = conversation,
                                   .title = "Réunion <b>&</b>",
                                   .metadata = {{"source", "test"}},
                                   .pinned = true,
                                   .created_at = kT0,
                                   .updated_at = kT0,
                                   .active_leaf_id = ids[1]}},
        message(0, "", "user", "question\twith\ttabs\nand lines"),
        message(1, ids[0], "assistant", "first answer"),
        message(2, ids[0], "assistant", "second answer"),
        message(3, "", "user", "question, edited \\ with a backslash"),
        message(4, ids[3], "assistant", "answer to the edit 😀"),
    };
  }

  std::unique_ptr<DbPool> pool_;
  std::unique_ptr<MessageStorage> messages_;
  std::unique_ptr<TransferStorage> storage_;
  FakeClock clock_{kT0 + absl::Hours(1)};
  TransferSlots slots_{8};
};

TEST_F(TransferStorageTest, AnImportReadsBackAsStoredTreesAndExportsAsIs) {
  const std::string c = NewUuidV7();
  std::vector<std::string> ids;
  absl::StatusOr<Transfers::Counts> counts = Import(kAlice, Tree(c, ids));
  ASSERT_THAT(counts, IsOk());
  EXPECT_EQ(counts->imported, 1);

  EXPECT_THAT(Branch(kAlice, c, Branch::kActive), ElementsAre(ids[0], ids[1]));
  EXPECT_THAT(Branch(kAlice, c, Branch::kAll),
              ElementsAre(ids[0], ids[1], ids[2], ids[3], ids[4]));

  std::vector<Exported> exported = Export(kAlice);
  ASSERT_EQ(exported.size(), 1u);
  const ConversationRecord& conversation = exported[0].conversation;
  EXPECT_EQ(conversation.id, c);
  EXPECT_EQ(conversation.title, "Réunion <b>&</b>");
  EXPECT_TRUE(conversation.pinned);
  EXPECT_EQ(conversation.message_count, 5);
  EXPECT_EQ(conversation.active_leaf_id, ids[1]);
  EXPECT_EQ(conversation.created_at, kT0);
  EXPECT_EQ(conversation.last_message_at, kT0 + absl::Seconds(4));
  ASSERT_EQ(exported[0].messages.size(), 5u);
  const MessageRecord& second = exported[0].messages[2];
  EXPECT_EQ(second.parent_id, ids[0]);
  EXPECT_EQ(second.sibling_index, 1);
  EXPECT_EQ(second.sibling_count, 2);
  EXPECT_EQ(second.model, "gpt-x");
  EXPECT_EQ(exported[0].messages[0].content, "question\twith\ttabs\nand lines");
  EXPECT_EQ(exported[0].messages[3].content,
            "question, edited \\ with a backslash");
  EXPECT_EQ(exported[0].messages[4].content, "answer to the edit 😀");
  EXPECT_EQ(exported[0].messages[4].metadata.at("k"), "v");
}

TEST_F(TransferStorageTest, AnExportImportedIntoAnotherAccountIsTheSame) {
  std::vector<std::string> ids;
  std::vector<ImportItem> items = Tree(NewUuidV7(), ids);
  ImportItem empty{"c2",
                   ImportedConversation{.id = NewUuidV7(),
                                        .title = "empty",
                                        .archived = true,
                                        .created_at = kT0 + absl::Hours(2)}};
  items.push_back(empty);
  ASSERT_THAT(Import(kAlice, items), IsOk());
  std::vector<Exported> alice = Export(kAlice);
  ASSERT_EQ(alice.size(), 2u);

  absl::StatusOr<Transfers::Counts> counts = Import(kBob, AsItems(alice));
  ASSERT_THAT(counts, IsOk());
  EXPECT_EQ(counts->imported, 2);
  std::vector<Exported> bob = Export(kBob);
  ASSERT_EQ(bob.size(), alice.size());
  for (size_t i = 0; i < alice.size(); ++i) {
    const ConversationRecord& a = alice[i].conversation;
    const ConversationRecord& b = bob[i].conversation;
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ(a.title, b.title);
    EXPECT_EQ(a.archived, b.archived);
    EXPECT_EQ(a.pinned, b.pinned);
    EXPECT_EQ(a.metadata, b.metadata);
    EXPECT_EQ(a.message_count, b.message_count);
    EXPECT_EQ(a.active_leaf_id, b.active_leaf_id);
    EXPECT_EQ(a.created_at, b.created_at);
    EXPECT_EQ(a.updated_at, b.updated_at);
    EXPECT_EQ(a.last_message_at, b.last_message_at);
    ASSERT_EQ(alice[i].messages.size(), bob[i].messages.size());
    for (size_t j = 0; j < alice[i].messages.size(); ++j) {
      const MessageRecord& x = alice[i].messages[j];
      const MessageRecord& y = bob[i].messages[j];
      EXPECT_EQ(x.id, y.id);
      EXPECT_EQ(x.parent_id, y.parent_id);
      EXPECT_EQ(x.role, y.role);
      EXPECT_EQ(x.content, y.content);
      EXPECT_EQ(x.status, y.status);
      EXPECT_EQ(x.model, y.model);
      EXPECT_EQ(x.metadata, y.metadata);
      EXPECT_EQ(x.created_at, y.created_at);
      EXPECT_EQ(x.updated_at, y.updated_at);
      EXPECT_EQ(x.sibling_index, y.sibling_index);
      EXPECT_EQ(x.sibling_count, y.sibling_count);
    }
  }
  // Alice's conversations are still hers alone.
  EXPECT_EQ(Export(kAlice).size(), 2u);
}

TEST_F(TransferStorageTest, TheSameFileTwiceStoresNothingTheSecondTime) {
  std::vector<std::string> ids;
  std::vector<ImportItem> items = Tree(NewUuidV7(), ids);
  ASSERT_THAT(Import(kAlice, items), IsOk());
  absl::StatusOr<Transfers::Counts> again = Import(kAlice, items);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->imported, 0);
  EXPECT_EQ(again->skipped, 1);
  std::vector<Exported> exported = Export(kAlice);
  ASSERT_EQ(exported.size(), 1u);
  EXPECT_EQ(exported[0].messages.size(), 5u);
}

TEST_F(TransferStorageTest, ParallelImportsOfOneFileStoreItOnce) {
  std::vector<ImportItem> items;
  for (int i = 0; i < 4; ++i) {
    std::vector<std::string> ids;
    std::vector<ImportItem> tree = Tree(NewUuidV7(), ids);
    items.insert(items.end(), tree.begin(), tree.end());
  }
  std::atomic<int> imported{0};
  std::atomic<int> skipped{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      absl::StatusOr<Transfers::Counts> counts = Import(kAlice, items);
      if (!counts.ok()) {
        ++failed;
        ADD_FAILURE() << counts.status();
        return;
      }
      imported += counts->imported;
      skipped += counts->skipped;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(imported.load(), 4);
  EXPECT_EQ(skipped.load(), 6 * 4 - 4);
  std::vector<Exported> exported = Export(kAlice);
  ASSERT_EQ(exported.size(), 4u);
  for (const Exported& e : exported) EXPECT_EQ(e.messages.size(), 5u);
}

TEST_F(TransferStorageTest, ABadItemAfterGoodOnesStoresNothing) {
  std::vector<std::string> ids;
  std::vector<ImportItem> items = Tree(NewUuidV7(), ids);
  items.push_back({"line 9", ImportedMessage{.id = NewUuidV7(),
                                             .parent_id = NewUuidV7(),
                                             .role = "user",
                                             .content = "orphan"}});
  EXPECT_THAT(Import(kAlice, items),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("line 9: ")));
  EXPECT_TRUE(Export(kAlice).empty());
  pqxx::connection admin(db_->admin_url());
  pqxx::work tx(admin);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM messages")[0].as<int>(), 0);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM conversations")[0].as<int>(), 0);
}

TEST_F(TransferStorageTest, AnExportComesInBatchesParentsFirst) {
  const std::string c = NewUuidV7();
  std::vector<ImportItem> items = {
      {"c", ImportedConversation{.id = c, .title = "long", .created_at = kT0}}};
  std::string parent;
  for (int i = 0; i < 300; ++i) {
    std::string id = NewUuidV7();
    items.push_back(
        {"m", ImportedMessage{.id = id,
                              .parent_id = parent,
                              .role = i % 2 ? "assistant" : "user",
                              .content = "turn " + std::to_string(i)}});
    parent = id;
  }
  ASSERT_THAT(Import(kAlice, items), IsOk());
  std::vector<Exported> exported = Export(kAlice, /*batch=*/64);
  ASSERT_EQ(exported.size(), 1u);
  ASSERT_EQ(exported[0].messages.size(), 300u);
  EXPECT_GE(exported[0].chunks, 300 / 64);
  for (size_t i = 1; i < 300; ++i)
    EXPECT_EQ(exported[0].messages[i].parent_id,
              exported[0].messages[i - 1].id);
  EXPECT_EQ(Branch(kAlice, c, Branch::kActive).size(), 200u)
      << "a page of the active branch: the whole path is active";
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

TEST_F(TransferStorageTest, AUsersTransfersAreCountedAcrossReplicas) {
  // Two replicas: pools, storages and process slots of their own.
  std::unique_ptr<DbPool> other_pool = NewPool();
  TransferStorage other_storage(other_pool.get());
  TransferSlots slots_a(4), slots_b(4);
  Transfers replica_a(storage_.get(), &slots_a, &clock_, {.per_user = 1});
  Transfers replica_b(&other_storage, &slots_b, &clock_, {.per_user = 1});

  BlockingSource blocking;
  std::thread running(
      [&] { EXPECT_THAT(replica_a.Import(kAlice, blocking), IsOk()); });
  while (!blocking.started.load()) std::this_thread::yield();
  CollectingSink sink;
  EXPECT_THAT(replica_b.Export(kAlice, sink),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(replica_b.Export(kBob, sink), IsOk()) << "Bob is not counted";
  blocking.release.store(true);
  running.join();
  EXPECT_THAT(replica_b.Export(kAlice, sink), IsOk()) << "the slot is free";
}

}  // namespace
}  // namespace chat::message
