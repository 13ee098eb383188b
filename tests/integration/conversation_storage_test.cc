// The conversation domain over ConversationStorage, against a real, migrated
// PostgreSQL (TEST_DATABASE_URL; skipped without it), as the service's own
// least-privilege role: the active leaf in every answer and the update that
// moves the active branch (activate_branch of
// deploy/migrations/0005_conversation_trees.sql). Messages are stored as the
// message service stores them, through append_message as chat_message.

#include "services/conversation/conversation_storage.h"

#include <atomic>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/db_reader.h"
#include "common/ids.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "services/conversation/conversations.h"
#include "tests/integration/database_test.h"
#include "tests/integration/test_database.h"

namespace chat::conversation {
namespace {

using ::chat::testing::IsOk;
using ::chat::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::SizeIs;

constexpr char kAlice[] = "0190f3a0-0000-7000-8000-00000000a11c";
constexpr char kBob[] = "0190f3a0-0000-7000-8000-000000000b0b";
constexpr char kMissingId[] = "0190f3a0-b1c2-7def-8123-456789abcdef";
constexpr char kNil[] = "00000000-0000-0000-0000-000000000000";

class ConversationStorageTest : public ::chat::testing::DatabaseTest {
 protected:
  void SetUpDatabase() override {
    db_->AddUser(kAlice, "alice");
    db_->AddUser(kBob, "bob");
    pool_ = DbPool::Create({.url = db_->RoleUrl("chat_conversation"),
                            .size = 2,
                            .statements = ConversationStorage::Statements()});
    storage_ = std::make_unique<ConversationStorage>(pool_.get());
    conversations_ = std::make_unique<Conversations>(storage_.get(), &clock_);
    reader_ =
        DbReader::Create({.url = db_->RoleUrl("chat_conversation"),
                          .connections = 2,
                          .statements = ConversationStorage::Statements()});
    read_storage_ =
        std::make_unique<ConversationStorage>(pool_.get(), reader_.get());
    read_conversations_ =
        std::make_unique<Conversations>(read_storage_.get(), &clock_);
  }

  ConversationRecord MustCreate(const std::string& title,
                                const std::string& user = kAlice) {
    absl::StatusOr<ConversationRecord> created =
        conversations_->Create(user, {.title = title}, "");
    EXPECT_THAT(created, IsOk());
    return created.value_or(ConversationRecord{});
  }

  // Stores a message as the message service does, a millisecond after the
  // previous one: under `parent` ("" a new root, nullopt the active leaf).
  std::string MustAppend(const std::string& conversation_id,
                         const std::optional<std::string>& parent,
                         const std::string& user = kAlice) {
    clock_.Advance(absl::Milliseconds(1));
    const std::string id = NewUuidV7(clock_.Now());
    std::optional<std::string> parent_param;
    if (parent) parent_param = parent->empty() ? kNil : *parent;
    pqxx::connection conn(db_->RoleUrl("chat_message"));
    pqxx::work tx(conn);
    tx.exec_params("SELECT set_config('app.user_id', $1, true)", user);
    pqxx::result rows = tx.exec_params(
        "SELECT id FROM append_message($1::uuid, $2::uuid, $3::uuid, "
        "$4::uuid, 'user', 'hi', 'complete', '', $5::timestamptz, "
        "'{}'::jsonb)",
        user, conversation_id, id, parent_param, PgTime(clock_.Now()));
    tx.commit();
    EXPECT_THAT(rows, SizeIs(1)) << "append_message stored nothing";
    return id;
  }

  // The active branch as the messages' `active` flags hold it, root first.
  std::vector<std::string> ActiveBranch(const std::string& conversation_id) {
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    std::vector<std::string> ids;
    for (const pqxx::row& row : tx.exec_params(
             "SELECT id::text FROM messages WHERE conversation_id = $1::uuid "
             "AND active ORDER BY seq",
             conversation_id)) {
      ids.push_back(row[0].as<std::string>());
    }
    return ids;
  }

  std::unique_ptr<DbPool> pool_;
  std::unique_ptr<ConversationStorage> storage_;
  FakeClock clock_{absl::FromUnixSeconds(1767225600)};
  std::unique_ptr<Conversations> conversations_;
  // The service's path: the listing read on a DbReader.
  std::unique_ptr<DbReader> reader_;
  std::unique_ptr<ConversationStorage> read_storage_;
  std::unique_ptr<Conversations> read_conversations_;
};

TEST_F(ConversationStorageTest, EveryAnswerCarriesTheActiveLeaf) {
  ConversationRecord created = MustCreate("c");
  EXPECT_EQ(created.active_leaf_id, "");
  EXPECT_EQ(conversations_->Get(kAlice, created.id)->active_leaf_id, "");

  const std::string first = MustAppend(created.id, std::nullopt);
  const std::string second = MustAppend(created.id, std::nullopt);
  absl::StatusOr<ConversationRecord> read =
      conversations_->Get(kAlice, created.id);
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(read->active_leaf_id, second);
  EXPECT_EQ(read->message_count, 2);
  absl::StatusOr<ConversationPage> page = conversations_->List(kAlice, {});
  ASSERT_THAT(page, IsOk());
  ASSERT_THAT(page->conversations, SizeIs(1));
  EXPECT_EQ(page->conversations[0].active_leaf_id, second);
  absl::StatusOr<ConversationRecord> pinned =
      conversations_->Update(kAlice, created.id, {.pinned = true});
  ASSERT_THAT(pinned, IsOk());
  EXPECT_EQ(pinned->active_leaf_id, second);
  EXPECT_THAT(ActiveBranch(created.id), ElementsAre(first, second));
}

// user ─┬─ reply ── follow_up ─┬─ answer_v1
//       │                      └─ answer_v2
//       └─ reply_v2 ── follow_up_2
TEST_F(ConversationStorageTest, ActiveMessageMovesTheBranchToTheNewestLeaf) {
  ConversationRecord c = MustCreate("tree");
  const std::string user = MustAppend(c.id, "");
  const std::string reply = MustAppend(c.id, user);
  const std::string follow_up = MustAppend(c.id, reply);
  const std::string answer_v1 = MustAppend(c.id, follow_up);
  const std::string answer_v2 = MustAppend(c.id, follow_up);
  const std::string reply_v2 = MustAppend(c.id, user);
  const std::string follow_up_2 = MustAppend(c.id, reply_v2);
  ASSERT_THAT(ActiveBranch(c.id), ElementsAre(user, reply_v2, follow_up_2));

  clock_.Advance(absl::Seconds(1));
  absl::StatusOr<ConversationRecord> updated =
      conversations_->Update(kAlice, c.id, {.active_message_id = reply});
  ASSERT_THAT(updated, IsOk());
  EXPECT_EQ(updated->active_leaf_id, answer_v2);
  EXPECT_EQ(updated->updated_at, clock_.Now());
  EXPECT_EQ(updated->message_count, 7);
  EXPECT_THAT(ActiveBranch(c.id),
              ElementsAre(user, reply, follow_up, answer_v2));
  absl::StatusOr<ConversationRecord> read = conversations_->Get(kAlice, c.id);
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(read->active_leaf_id, answer_v2);
  EXPECT_EQ(read->updated_at, updated->updated_at);

  // A leaf, in upper case, together with another field.
  updated = conversations_->Update(
      kAlice, c.id,
      {.title = "renamed",
       .active_message_id = absl::AsciiStrToUpper(answer_v1)});
  ASSERT_THAT(updated, IsOk());
  EXPECT_EQ(updated->active_leaf_id, answer_v1);
  EXPECT_EQ(updated->title, "renamed");
  EXPECT_THAT(ActiveBranch(c.id),
              ElementsAre(user, reply, follow_up, answer_v1));

  EXPECT_EQ(conversations_->Update(kAlice, c.id, {.active_message_id = user})
                ->active_leaf_id,
            follow_up_2);
  EXPECT_THAT(ActiveBranch(c.id), ElementsAre(user, reply_v2, follow_up_2));

  // A message appended without a parent goes under the new active leaf.
  ASSERT_THAT(
      conversations_->Update(kAlice, c.id, {.active_message_id = reply}),
      IsOk());
  const std::string next = MustAppend(c.id, std::nullopt);
  EXPECT_THAT(ActiveBranch(c.id),
              ElementsAreArray({user, reply, follow_up, answer_v2, next}));
}

TEST_F(ConversationStorageTest, AnotherConversationsMessageIsNotFound) {
  ConversationRecord c = MustCreate("mine");
  const std::string root = MustAppend(c.id, "");
  const std::string other_root = MustAppend(c.id, "");
  ConversationRecord other = MustCreate("other");
  const std::string elsewhere = MustAppend(other.id, "");
  ConversationRecord bobs = MustCreate("bob's", kBob);
  const std::string bobs_message = MustAppend(bobs.id, "", kBob);
  const ConversationRecord before = *conversations_->Get(kAlice, c.id);
  ASSERT_EQ(before.active_leaf_id, other_root);
  clock_.Advance(absl::Seconds(1));

  for (const std::string& id :
       {std::string(kMissingId), elsewhere, bobs_message, c.id}) {
    // The title change of the same update is rolled back with it.
    EXPECT_THAT(
        conversations_->Update(kAlice, c.id,
                               {.title = "changed", .active_message_id = id}),
        StatusIs(absl::StatusCode::kNotFound, "message not found"))
        << id;
    absl::StatusOr<ConversationRecord> read = conversations_->Get(kAlice, c.id);
    ASSERT_THAT(read, IsOk());
    EXPECT_EQ(read->title, "mine");
    EXPECT_EQ(read->active_leaf_id, other_root);
    EXPECT_EQ(read->updated_at, before.updated_at);
    EXPECT_THAT(ActiveBranch(c.id), ElementsAre(other_root));
  }
  EXPECT_THAT(conversations_->Update(kBob, c.id, {.active_message_id = root}),
              StatusIs(absl::StatusCode::kNotFound, "conversation not found"));
  EXPECT_EQ(conversations_->Get(kBob, bobs.id)->active_leaf_id, bobs_message);
  EXPECT_EQ(conversations_->Get(kAlice, other.id)->active_leaf_id, elsewhere);
  EXPECT_THAT(ActiveBranch(c.id), ElementsAre(other_root));
}

// The listing on the reader and through the pool: the same pages, field for
// field (pinned first, archived apart, titles searched, last_message_at
// NULL or not), and the same errors.
TEST_F(ConversationStorageTest, BothPathsListTheSamePages) {
  for (int i = 0; i < 23; ++i) {
    ConversationRecord c = MustCreate(i % 3 == 0 ? "Paris trip" : "notes");
    if (i % 2 == 0) MustAppend(c.id, std::nullopt);
    clock_.Advance(absl::Milliseconds(1));
    if (i % 5 == 0) {
      ASSERT_THAT(conversations_->Update(kAlice, c.id, {.pinned = true}),
                  IsOk());
    }
    if (i % 7 == 0) {
      ASSERT_THAT(conversations_->Update(kAlice, c.id, {.archived = true}),
                  IsOk());
    }
  }
  MustCreate("bob's", kBob);
  for (const ListQuery& first :
       {ListQuery{.page_size = 5}, ListQuery{.page_size = 50},
        ListQuery{.page_size = 4, .archived = true},
        ListQuery{.page_size = 3, .q = "paris"}}) {
    ListQuery pooled_query = first;
    ListQuery read_query = first;
    int pages = 0;
    do {
      absl::StatusOr<ConversationPage> pooled =
          conversations_->List(kAlice, pooled_query);
      absl::StatusOr<ConversationPage> read =
          read_conversations_->List(kAlice, read_query);
      ASSERT_THAT(pooled, IsOk());
      ASSERT_THAT(read, IsOk());
      ASSERT_EQ(read->conversations.size(), pooled->conversations.size());
      for (size_t i = 0; i < read->conversations.size(); ++i) {
        const ConversationRecord& r = read->conversations[i];
        const ConversationRecord& p = pooled->conversations[i];
        EXPECT_EQ(r.id, p.id);
        EXPECT_EQ(r.title, p.title);
        EXPECT_EQ(r.untitled, p.untitled);
        EXPECT_EQ(r.metadata, p.metadata);
        EXPECT_EQ(r.archived, p.archived);
        EXPECT_EQ(r.pinned, p.pinned);
        EXPECT_EQ(r.message_count, p.message_count);
        EXPECT_EQ(r.last_message_at, p.last_message_at);
        EXPECT_EQ(r.created_at, p.created_at);
        EXPECT_EQ(r.updated_at, p.updated_at);
        EXPECT_EQ(r.active_leaf_id, p.active_leaf_id);
      }
      EXPECT_EQ(read->next_page_token, pooled->next_page_token);
      pooled_query.page_token = pooled->next_page_token;
      read_query.page_token = read->next_page_token;
    } while (!read_query.page_token.empty() && ++pages < 20);
  }

  for (Conversations* conversations :
       {conversations_.get(), read_conversations_.get()}) {
    absl::StatusOr<ConversationPage> none =
        conversations->List(kAlice, {.q = "no such title"});
    ASSERT_THAT(none, IsOk());
    EXPECT_TRUE(none->conversations.empty());
    EXPECT_THAT(conversations->List(kAlice, {.page_size = -1}),
                StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(conversations->List(kAlice, {.page_token = "garbage"}),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
  db_->DeleteUser(kBob);
  for (Conversations* conversations :
       {conversations_.get(), read_conversations_.get()}) {
    EXPECT_THAT(conversations->List(kBob, {}),
                StatusIs(absl::StatusCode::kUnauthenticated));
  }
}

// 32 listings at a time from eight threads, Alice's, Bob's and empty ones,
// each answered from the reader's thread with its own page.
TEST_F(ConversationStorageTest, ParallelListingsNeverMix) {
  for (int i = 0; i < 7; ++i) MustCreate("a");
  MustCreate("b", kBob);
  constexpr int kThreads = 8;
  constexpr int kInFlight = 4;
  constexpr int kRounds = 40;
  std::atomic<int> wrong{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kThreads; ++w) {
    workers.emplace_back([&, w] {
      for (int round = 0; round < kRounds; ++round) {
        std::vector<std::promise<void>> answered(kInFlight);
        for (int k = 0; k < kInFlight; ++k) {
          const int kind = (w + round + k) % 3;
          read_conversations_->ListAsync(
              kind == 1 ? kBob : kAlice,
              {.page_size = 5, .q = kind == 2 ? "nothing" : ""},
              [&wrong, &answered, k,
               kind](absl::StatusOr<ConversationPage> page) {
                const size_t expected = kind == 0 ? 5 : kind == 1 ? 1 : 0;
                if (!page.ok() || page->conversations.size() != expected ||
                    page->next_page_token.empty() != (kind != 0)) {
                  ++wrong;
                }
                answered[k].set_value();
              });
        }
        for (std::promise<void>& a : answered) a.get_future().wait();
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace chat::conversation
