// Durable replies in PostgreSQL (deploy/migrations/0008_durable_replies.sql,
// 0009_reply_saves.sql, 0010_start_reply.sql):
// a reply in progress stays its owner's while the owner's session holds its
// advisory lock; once that session is gone, any replica marks it incomplete
// with its stored text. The cross-user policy of recovery lets the message
// role do that and nothing else. Needs TEST_DATABASE_URL (skipped without).

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/ids.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "services/message/message_storage.h"
#include "tests/integration/database_test.h"
#include "tests/integration/test_database.h"

namespace chat::message {
namespace {

using ::chat::testing::IsOk;
using ::chat::testing::StatusIs;

constexpr char kAlice[] = "0190f3a0-0000-7000-8000-00000000a11c";
constexpr char kBob[] = "0190f3a0-0000-7000-8000-000000000b0b";

class ReplyRecoveryTest : public ::chat::testing::DatabaseTest {
 protected:
  void SetUpDatabase() override {
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    for (const auto& [user, name] :
         {std::pair{kAlice, "alice"}, std::pair{kBob, "bob"}}) {
      db_->AddUser(user, name);
      conversations_[user] = NewUuidV7();
      tx.exec_params(
          "INSERT INTO conversations (user_id, id, title, untitled, "
          "created_at, updated_at) VALUES ($1::uuid, $2::uuid, 't', false, "
          "now(), now())",
          std::string(user), conversations_[user]);
    }
    tx.commit();
    pool_ = DbPool::Create({.url = db_->RoleUrl("chat_message"),
                            .size = 2,
                            .statements = MessageStorage::Statements()});
    storage_ = std::make_unique<MessageStorage>(pool_.get());
  }

  // A reply in progress of `owner`, with `text` stored.
  std::string StartReply(const char* user, int64_t owner,
                         const std::string& text) {
    const absl::Time now = ToMicroseconds(absl::Now());
    absl::StatusOr<StartedReply> started = storage_->StartReply(
        user,
        MessageRecord{.id = NewUuidV7(),
                      .conversation_id = conversations_[user],
                      .role = Role::kUser,
                      .content = "question",
                      .created_at = now,
                      .updated_at = now},
        std::nullopt,
        MessageRecord{.id = NewUuidV7(),
                      .conversation_id = conversations_[user],
                      .role = Role::kAssistant,
                      .status = MessageStatus::kInProgress,
                      .created_at = now,
                      .updated_at = now},
        std::nullopt, owner, 4, ContextLimits{});
    EXPECT_THAT(started, IsOk());
    if (!started.ok()) return "";
    absl::StatusOr<absl::flat_hash_set<std::string>> saved =
        storage_->SaveReplyTexts(
            owner, {{user, conversations_[user], started->reply.id, text}},
            now);
    EXPECT_THAT(saved, IsOk());
    return started->reply.id;
  }

  // Statistics of a burst that has ended: ANALYZE runs while 5,000 of
  // Alice's replies are in progress, then they complete. The statistics
  // still say they are in progress until the next ANALYZE. This
  // connection's own scan counts are flushed before it closes.
  void MakeStatisticsOfABurst() {
    constexpr int kBurst = 5000;
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    const std::string burst = NewUuidV7();
    tx.exec_params0(
        "INSERT INTO conversations (user_id, id, title, untitled, created_at, "
        "updated_at) VALUES ($1::uuid, $2::uuid, 'burst', false, now(), "
        "now())",
        std::string(kAlice), burst);
    tx.exec_params0(
        "INSERT INTO messages (user_id, conversation_id, seq, id, parent_id, "
        "active, role, content, status, owner_key, created_at, updated_at) "
        "SELECT $1::uuid, $2::uuid, g, md5($2::text || g)::uuid, "
        "'00000000-0000-0000-0000-000000000000'::uuid, g = 1, 'assistant', "
        "'', 'in_progress', 1, now(), now() FROM generate_series(1, $3) g",
        std::string(kAlice), burst, kBurst);
    tx.commit();
    pqxx::nontransaction analyze(admin);
    analyze.exec0("ANALYZE messages");
    analyze.exec_params0(
        "UPDATE messages SET status = 'complete' WHERE conversation_id = "
        "$1::uuid",
        burst);
    analyze.exec("SELECT pg_stat_force_next_flush()");
  }

  MessageRecord Stored(const char* user, const std::string& id) {
    absl::StatusOr<MessageRecord> m =
        storage_->Get(user, conversations_[user], id);
    EXPECT_THAT(m, IsOk());
    return m.value_or(MessageRecord{});
  }

  // Waits (up to 10 s) until PostgreSQL has let go of an owner's lock: a
  // closed connection's backend releases it as it exits, a moment after
  // the client hung up.
  void AwaitLockReleased(int64_t key) {
    pqxx::connection admin(db_->admin_url());
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      pqxx::nontransaction tx(admin);
      if (tx.exec_params1("SELECT NOT EXISTS (SELECT 1 FROM pg_locks "
                          "WHERE locktype = 'advisory' AND objsubid = 1 "
                          "AND ((classid::bigint << 32) | objid::bigint) = $1)",
                          key)[0]
              .as<bool>()) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "the lock of owner " << key << " is still held";
  }

  std::map<std::string, std::string> conversations_;
  std::unique_ptr<DbPool> pool_;
  std::unique_ptr<MessageStorage> storage_;
};

TEST_F(ReplyRecoveryTest,
       ARepliesOwnerThatIsGoneLeavesItIncompleteWithItsText) {
  absl::StatusOr<std::unique_ptr<ReplyOwnership>> alive =
      ReplyOwnership::Acquire(db_->RoleUrl("chat_message"));
  absl::StatusOr<std::unique_ptr<ReplyOwnership>> crashed =
      ReplyOwnership::Acquire(db_->RoleUrl("chat_message"));
  ASSERT_THAT(alive, IsOk());
  ASSERT_THAT(crashed, IsOk());
  ASSERT_NE((*alive)->key(), (*crashed)->key());

  const std::string kept = StartReply(kAlice, (*alive)->key(), "still going");
  const std::string lost = StartReply(kBob, (*crashed)->key(), "half an ans");
  // Both owners are alive: nothing to recover.
  EXPECT_EQ((*alive)
                ->RecoverOrphans(pool_.get(), absl::Now() + absl::Seconds(60),
                                 absl::Seconds(10))
                .value_or(-1),
            0);

  const int64_t crashed_key = (*crashed)->key();
  crashed->reset();  // its session ends, and the lock with it
  AwaitLockReleased(crashed_key);
  EXPECT_EQ((*alive)
                ->RecoverOrphans(pool_.get(), absl::Now(), absl::Seconds(10))
                .value_or(-1),
            0)
      << "stored within the grace: its owner may only have lost its session";
  EXPECT_EQ((*alive)
                ->RecoverOrphans(pool_.get(), absl::Now() + absl::Seconds(60),
                                 absl::Seconds(10))
                .value_or(-1),
            1)
      << "Bob's reply, found across users";
  const MessageRecord recovered = Stored(kBob, lost);
  EXPECT_EQ(recovered.status, MessageStatus::kIncomplete);
  EXPECT_EQ(recovered.content, "half an ans");
  EXPECT_EQ(Stored(kAlice, kept).status, MessageStatus::kInProgress);
  EXPECT_EQ((*alive)
                ->RecoverOrphans(pool_.get(), absl::Now() + absl::Seconds(60),
                                 absl::Seconds(10))
                .value_or(-1),
            0);
}

TEST_F(ReplyRecoveryTest, TheInProgressCapCountsEveryOwner) {
  for (int i = 0; i < 2; ++i) StartReply(kAlice, 1000 + i, "x");
  const absl::Time now = ToMicroseconds(absl::Now());
  EXPECT_THAT(storage_->StartReply(
                  kAlice, std::nullopt, std::nullopt,
                  MessageRecord{.id = NewUuidV7(),
                                .conversation_id = conversations_[kAlice],
                                .role = Role::kAssistant,
                                .status = MessageStatus::kInProgress,
                                .created_at = now,
                                .updated_at = now},
                  std::string(), 3000, 2, ContextLimits{}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(storage_->StartReply(
                  kBob, std::nullopt, std::nullopt,
                  MessageRecord{.id = NewUuidV7(),
                                .conversation_id = conversations_[kBob],
                                .role = Role::kAssistant,
                                .status = MessageStatus::kInProgress,
                                .created_at = now,
                                .updated_at = now},
                  std::string(), 3000, 2, ContextLimits{}),
              IsOk())
      << "another user's replies do not count";
}

// A question and its reply (Chat's start), under `prompt_parent`.
absl::StatusOr<StartedReply> StartChat(MessageStorage& storage,
                                       const std::string& user,
                                       const std::string& conversation,
                                       const ParentChoice& prompt_parent,
                                       int64_t owner, int cap) {
  const absl::Time now = ToMicroseconds(absl::Now());
  return storage.StartReply(user,
                            MessageRecord{.id = NewUuidV7(),
                                          .conversation_id = conversation,
                                          .role = Role::kUser,
                                          .content = "question",
                                          .created_at = now,
                                          .updated_at = now},
                            prompt_parent,
                            MessageRecord{.id = NewUuidV7(),
                                          .conversation_id = conversation,
                                          .role = Role::kAssistant,
                                          .status = MessageStatus::kInProgress,
                                          .model = "m",
                                          .created_at = now,
                                          .updated_at = now},
                            std::nullopt, owner, cap,
                            {.max_messages = 10, .budget_chars = 1000});
}

TEST_F(ReplyRecoveryTest, AStartStoresTheQuestionAndItsOwnedReplyOrNothing) {
  auto messages = [&] {
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    return tx.exec1("SELECT count(*) FROM messages")[0].as<int>();
  };
  EXPECT_THAT(StartChat(*storage_, kAlice, NewUuidV7(), std::nullopt, 5, 4),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(
      StartChat(*storage_, kAlice, conversations_[kBob], std::nullopt, 5, 4),
      StatusIs(absl::StatusCode::kNotFound))
      << "Bob's conversation is not Alice's";
  EXPECT_THAT(StartChat(*storage_, kAlice, conversations_[kAlice],
                        std::string(NewUuidV7()), 5, 4),
              StatusIs(absl::StatusCode::kNotFound))
      << "no such parent";
  EXPECT_EQ(messages(), 0);

  absl::StatusOr<StartedReply> started =
      StartChat(*storage_, kAlice, conversations_[kAlice], std::nullopt, 5, 4);
  ASSERT_THAT(started, IsOk());
  ASSERT_TRUE(started->prompt.has_value());
  EXPECT_EQ(started->prompt->content, "question");
  EXPECT_EQ(started->prompt->parent_id, "");
  EXPECT_EQ(started->reply.parent_id, started->prompt->id);
  EXPECT_EQ(started->reply.status, MessageStatus::kInProgress);
  EXPECT_EQ(started->reply.model, "m");
  EXPECT_EQ(started->reply.seq, started->prompt->seq + 1);
  EXPECT_EQ(messages(), 2);
  // The reply is its owner's: the owner's save reaches it, another's not.
  const absl::Time now = ToMicroseconds(absl::Now());
  const std::vector<ReplyText> save = {
      {kAlice, conversations_[kAlice], started->reply.id, "so far"}};
  EXPECT_TRUE(storage_->SaveReplyTexts(6, save, now).value().empty());
  EXPECT_TRUE(storage_->SaveReplyTexts(5, save, now)
                  .value()
                  .contains(started->reply.id));

  // At the cap the question is not stored either.
  EXPECT_THAT(
      StartChat(*storage_, kAlice, conversations_[kAlice], std::nullopt, 5, 1),
      StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(messages(), 2);

  // The next start reads the context above its question in the same
  // transaction, newest first: the reply's stored text, the first question.
  absl::StatusOr<StartedReply> next =
      StartChat(*storage_, kAlice, conversations_[kAlice], std::nullopt, 5, 4);
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(next->prompt->parent_id, started->reply.id);
  ASSERT_EQ(next->context.size(), 2u);
  EXPECT_EQ(next->context[0].role, Role::kAssistant);
  EXPECT_EQ(next->context[0].content, "so far");
  EXPECT_EQ(next->context[1].role, Role::kUser);
  EXPECT_EQ(next->context[1].content, "question");
}

// The reply is inserted with its owner (migration 0015): a start writes
// each of its two messages once, and updates none, so it leaves no dead
// row version behind in messages and its indexes.
TEST_F(ReplyRecoveryTest, AStartWritesEachMessageOnceWithTheReplysOwner) {
  pqxx::connection role(db_->RoleUrl("chat_message"));
  pqxx::work tx(role);
  tx.exec_params("SELECT set_config('app.user_id', $1, true)",
                 std::string(kAlice));
  const std::string reply_id = NewUuidV7();
  const pqxx::result rows = tx.exec_params(
      "SELECT part FROM start_reply($1::uuid, $2::uuid, 7, 4, $3::uuid, "
      "NULL, 'user', 'question', 'complete', '', now(), '{}'::jsonb, "
      "$4::uuid, NULL, 'assistant', '', 'in_progress', 'm', now(), "
      "'{}'::jsonb)",
      std::string(kAlice), conversations_[kAlice], std::string(NewUuidV7()),
      reply_id);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1][0].as<std::string>(), "reply");
  const pqxx::row writes = tx.exec1(
      "SELECT pg_stat_get_xact_tuples_inserted('messages'::regclass), "
      "pg_stat_get_xact_tuples_updated('messages'::regclass)");
  EXPECT_EQ(writes[0].as<int>(), 2) << "the question and the reply";
  EXPECT_EQ(writes[1].as<int>(), 0) << "no message written twice";
  EXPECT_EQ(tx.exec_params1("SELECT owner_key FROM messages WHERE user_id = "
                            "$1::uuid AND id = $2::uuid",
                            std::string(kAlice), reply_id)[0]
                .as<int64_t>(),
            7);
  tx.commit();
}

// The per-user cap counts the user's replies in progress through
// messages_in_progress_idx (migration 0016). Statistics taken while many of
// the user's messages were in progress make PostgreSQL expect thousands of
// matching rows, and a plan of its own (a sequential scan, stopped at the
// cap's LIMIT) then read the whole table on every start until the next
// ANALYZE. Starts after such statistics, past the five that plpgsql plans
// for their arguments, read messages through indexes only.
TEST_F(ReplyRecoveryTest, StartsCountRepliesInProgressByIndexAfterABurst) {
  constexpr int kStarts = 8;
  MakeStatisticsOfABurst();
  pqxx::connection role(db_->RoleUrl("chat_message"));
  pqxx::work tx(role);
  tx.exec_params("SELECT set_config('app.user_id', $1, true)",
                 std::string(kAlice));
  for (int i = 0; i < kStarts; ++i) {
    const pqxx::result rows = tx.exec_params(
        "SELECT part FROM start_reply($1::uuid, $2::uuid, 7, 100, NULL, "
        "NULL, NULL, NULL, NULL, NULL, NULL, NULL, $3::uuid, NULL, "
        "'assistant', '', 'in_progress', 'm', now(), '{}'::jsonb)",
        std::string(kAlice), conversations_[kAlice], NewUuidV7());
    ASSERT_EQ(rows.size(), 1u);
    ASSERT_EQ(rows[0][0].as<std::string>(), "reply");
  }
  EXPECT_EQ(tx.exec1("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE "
                     "relid = 'messages'::regclass")[0]
                .as<int>(),
            0)
      << "sequential scans of messages in " << kStarts << " starts";
}

// Recovery reads the replies in progress of every user, every 30 s on each
// replica. After statistics taken during a burst (most of the rows in
// progress), PostgreSQL would find their owners by a sequential scan of
// messages until the next ANALYZE; recovery reads them by index whatever
// the statistics say. The scans are counted from pg_stat_user_tables: each
// connection's are flushed on demand (pg_stat_force_next_flush) before
// they are read.
TEST_F(ReplyRecoveryTest, RecoveryFindsRepliesInProgressByIndexAfterABurst) {
  MakeStatisticsOfABurst();
  // One connection for every statement of the test's own: its statistics
  // are all flushed before they are counted.
  auto pool = DbPool::Create({.url = db_->RoleUrl("chat_message"),
                              .size = 1,
                              .statements = MessageStorage::Statements()});
  storage_ = std::make_unique<MessageStorage>(pool.get());
  const std::string reply = StartReply(kBob, 7, "still going");
  auto flush = [&] {
    ASSERT_THAT(pool->Transact("",
                               [](pqxx::work& tx) {
                                 tx.exec("SELECT pg_stat_force_next_flush()");
                                 return absl::OkStatus();
                               }),
                IsOk());
  };
  pqxx::connection admin(db_->admin_url());
  auto seq_scans = [&] {
    pqxx::nontransaction tx(admin);
    tx.exec("SELECT pg_stat_clear_snapshot()");
    return tx
        .exec1(
            "SELECT seq_scan FROM pg_stat_user_tables WHERE relid = "
            "'messages'::regclass")[0]
        .as<int64_t>();
  };
  absl::StatusOr<std::unique_ptr<ReplyOwnership>> owner =
      ReplyOwnership::Acquire(db_->RoleUrl("chat_message"));
  ASSERT_THAT(owner, IsOk());
  flush();
  const int64_t before = seq_scans();
  for (int i = 0; i < 3; ++i) {
    // Bob's reply's owner (7) holds no lock: recovered on the first pass.
    EXPECT_THAT(
        (*owner)->RecoverOrphans(pool.get(), absl::Now() + absl::Seconds(60),
                                 absl::Seconds(10)),
        IsOk());
  }
  flush();
  EXPECT_EQ(seq_scans() - before, 0) << "sequential scans of messages";
  EXPECT_EQ(Stored(kBob, reply).status, MessageStatus::kIncomplete);
}

TEST_F(ReplyRecoveryTest, ParallelStartsTakeNoMoreThanTheCap) {
  constexpr int kStarts = 12;
  constexpr int kCap = 3;
  auto pool = DbPool::Create({.url = db_->RoleUrl("chat_message"),
                              .size = kStarts,
                              .statements = MessageStorage::Statements()});
  MessageStorage storage(pool.get());
  std::vector<absl::StatusCode> codes(kStarts);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kStarts; ++i) {
      threads.emplace_back([&, i] {
        codes[i] = StartChat(storage, kAlice, conversations_[kAlice],
                             std::nullopt, 100 + i, kCap)
                       .status()
                       .code();
      });
    }
    for (std::thread& t : threads) t.join();
  }
  EXPECT_EQ(std::count(codes.begin(), codes.end(), absl::StatusCode::kOk),
            kCap);
  EXPECT_EQ(std::count(codes.begin(), codes.end(),
                       absl::StatusCode::kResourceExhausted),
            kStarts - kCap);
  pqxx::connection admin(db_->admin_url());
  pqxx::work tx(admin);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM messages WHERE status = "
                     "'in_progress'")[0]
                .as<int>(),
            kCap);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM messages")[0].as<int>(), 2 * kCap);
}

TEST_F(ReplyRecoveryTest, RecoveryMayOnlyEndOtherUsersRepliesInProgress) {
  const std::string bobs = StartReply(kBob, 77, "text");
  pqxx::connection as_message(db_->RoleUrl("chat_message"));
  {
    pqxx::work tx(as_message);
    tx.exec_params("SELECT set_config('app.user_id', $1, true)",
                   std::string(kAlice));
    tx.exec("SET LOCAL app.reply_recovery = 'on'");
    // Seeing it is allowed; changing its text while keeping it in progress
    // is not.
    EXPECT_EQ(tx.exec("SELECT count(*) FROM messages WHERE status = "
                      "'in_progress'")[0][0]
                  .as<int>(),
              1);
    EXPECT_THROW(tx.exec_params("UPDATE messages SET content = 'stolen' "
                                "WHERE id = $1::uuid",
                                bobs),
                 pqxx::sql_error);
  }
  {
    pqxx::work tx(as_message);
    tx.exec_params("SELECT set_config('app.user_id', $1, true)",
                   std::string(kAlice));
    tx.exec("SET LOCAL app.reply_recovery = 'on'");
    EXPECT_EQ(tx.exec("SELECT count(*) FROM messages WHERE status = "
                      "'complete'")[0][0]
                  .as<int>(),
              0)
        << "Bob's question is not in progress: recovery does not see it";
  }
  EXPECT_EQ(Stored(kBob, bobs).content, "text");
}

TEST_F(ReplyRecoveryTest, AnOwnerStoresTheTextOfAllItsRepliesAtOnce) {
  const std::string alice = StartReply(kAlice, 41, "");
  const std::string bob = StartReply(kBob, 41, "");
  const std::string others = StartReply(kBob, 42, "kept");
  const std::string cancelled = StartReply(kAlice, 41, "so far");
  const std::string unchanged = StartReply(kAlice, 41, "as it was");
  ASSERT_THAT(storage_->CancelReply(kAlice, conversations_[kAlice], cancelled,
                                    ToMicroseconds(absl::Now())),
              IsOk());
  const std::string text =
      "Quote \" backslash \\ caf\u00e9 \xF0\x9F\x99\x82 {}";
  const absl::Time later = ToMicroseconds(absl::Now() + absl::Seconds(5));
  absl::StatusOr<absl::flat_hash_set<std::string>> ours =
      storage_->SaveReplyTexts(
          41,
          {{kAlice, conversations_[kAlice], alice, text},
           {kBob, conversations_[kBob], bob, std::nullopt, /*touch=*/true},
           {kAlice, conversations_[kAlice], unchanged, std::nullopt},
           {kBob, conversations_[kBob], others, "stolen"},
           {kAlice, conversations_[kAlice], cancelled, "after the cancel"}},
          later);
  ASSERT_THAT(ours, IsOk());
  // Only the owner's replies still in progress.
  EXPECT_EQ(*ours, (absl::flat_hash_set<std::string>{alice, bob, unchanged}));
  EXPECT_EQ(Stored(kAlice, unchanged).content, "as it was");
  EXPECT_LT(Stored(kAlice, unchanged).updated_at, later)
      << "no text and no touch: only read";
  EXPECT_EQ(Stored(kAlice, alice).content, text) << "byte for byte";
  EXPECT_EQ(Stored(kAlice, alice).updated_at, later);
  EXPECT_EQ(Stored(kBob, bob).content, "") << "no text: unchanged";
  EXPECT_EQ(Stored(kBob, bob).updated_at, later) << "touched: a sign of life";
  EXPECT_EQ(Stored(kBob, others).content, "kept");
  EXPECT_EQ(Stored(kAlice, cancelled).content, "so far");
  EXPECT_EQ(Stored(kAlice, cancelled).status, MessageStatus::kIncomplete);
}

TEST_F(ReplyRecoveryTest, TheOwnersPolicyReachesNothingElse) {
  const std::string reply = StartReply(kAlice, 41, "x");
  pqxx::connection role(db_->RoleUrl("chat_message"));
  pqxx::work tx(role);
  tx.exec("SELECT set_config('app.reply_owner', '41', true)");
  // Its replies in progress, and nothing else of any user.
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM messages")[0].as<int>(), 1);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM conversations")[0].as<int>(), 0);
  // It cannot end them or give them away: they stay in progress and its own.
  EXPECT_THROW(tx.exec("UPDATE messages SET status = 'complete'"),
               pqxx::sql_error);
  (void)reply;
}

}  // namespace
}  // namespace chat::message
