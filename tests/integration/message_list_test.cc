// The message listing through MessageStorage's two paths, against a real,
// migrated PostgreSQL: read on a DbReader (the service's path: pipelined,
// no thread waits) and through the pool (DbPool::ReadRows and a
// transaction). Both answer the same pages, field for field, and the same
// errors: an empty page, a missing or another user's conversation
// (NOT_FOUND), a deleted account (UNAUTHENTICATED); and many threads mixing
// them get each its own answer.

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/db_reader.h"
#include "common/ids.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "services/message/message_storage.h"
#include "services/message/messages.h"
#include "tests/integration/database_test.h"
#include "tests/integration/test_database.h"

namespace chat::message {
namespace {

using ::chat::testing::IsOk;
using ::chat::testing::StatusIs;

constexpr char kAlice[] = "0190f3a0-0000-7000-8000-00000000c11a";
constexpr char kBob[] = "0190f3a0-0000-7000-8000-00000000c11b";
constexpr char kMissing[] = "0190f3a0-b1c2-7def-8123-456789abcdef";
constexpr int kMessages = 120;

class MessageListTest : public ::chat::testing::DatabaseTest {
 protected:
  void SetUpDatabase() override {
    db_->AddUser(kAlice, "alice");
    db_->AddUser(kBob, "bob");
    pool_ = DbPool::Create({.url = db_->RoleUrl("chat_message"),
                            .size = 4,
                            .acquire_timeout = absl::Seconds(60),
                            .statements = MessageStorage::Statements()});
    reader_ = DbReader::Create({.url = db_->RoleUrl("chat_message"),
                                .connections = 2,
                                .statements = MessageStorage::Statements()});
    pooled_storage_ = std::make_unique<MessageStorage>(pool_.get());
    read_storage_ =
        std::make_unique<MessageStorage>(pool_.get(), reader_.get());
    pooled_ = std::make_unique<Messages>(pooled_storage_.get(), &clock_);
    read_ = std::make_unique<Messages>(read_storage_.get(), &clock_);

    busy_ = AddConversation(kAlice);
    empty_ = AddConversation(kAlice);
    bobs_ = AddConversation(kBob);
    // A tree: every tenth message gets a second version, which stays active.
    std::string parent;
    for (int i = 0; i < kMessages; ++i) {
      const std::string id = MustAppend(kAlice, busy_, parent, i);
      if (i % 10 == 9) {
        parent = MustAppend(kAlice, busy_, parent, i + 1000);
      } else {
        parent = id;
      }
    }
    MustAppend(kBob, bobs_, "", 0);
  }

  std::string AddConversation(const std::string& user) {
    const std::string id = NewUuidV7(clock_.Now());
    clock_.Advance(absl::Milliseconds(1));
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    tx.exec_params0(
        "INSERT INTO conversations (user_id, id, title, untitled, created_at, "
        "updated_at) VALUES ($1::uuid, $2::uuid, 'c', false, now(), now())",
        user, id);
    tx.commit();
    return id;
  }

  // Under `parent` ("" a new root).
  std::string MustAppend(const std::string& user,
                         const std::string& conversation,
                         const std::string& parent, int n) {
    clock_.Advance(absl::Milliseconds(1));
    absl::StatusOr<MessageRecord> m =
        pooled_->Create(user, conversation,
                        {.role = n % 2 == 0 ? Role::kUser : Role::kAssistant,
                         .content = absl::StrCat(
                             "message ", n, " \xE2\x80\x9C\xF0\x9F\x92\xAC"),
                         .metadata = {{"n", absl::StrCat(n)}},
                         .parent_id = parent},
                        "");
    EXPECT_THAT(m, IsOk());
    return m.ok() ? m->id : "";
  }

  // Every page of the listing, joined.
  static std::vector<MessageRecord> All(Messages& messages,
                                        const std::string& conversation,
                                        ListQuery query) {
    std::vector<MessageRecord> all;
    int pages = 0;
    do {
      absl::StatusOr<MessagePage> page =
          messages.List(kAlice, conversation, query);
      EXPECT_THAT(page, IsOk());
      if (!page.ok() || ++pages > 100) break;
      all.insert(all.end(), page->messages.begin(), page->messages.end());
      query.page_token = page->next_page_token;
    } while (!query.page_token.empty());
    return all;
  }

  FakeClock clock_{absl::FromUnixSeconds(1767225600)};
  std::unique_ptr<DbPool> pool_;
  std::unique_ptr<DbReader> reader_;
  std::unique_ptr<MessageStorage> pooled_storage_;
  std::unique_ptr<MessageStorage> read_storage_;
  std::unique_ptr<Messages> pooled_;
  std::unique_ptr<Messages> read_;
  std::string busy_;
  std::string empty_;
  std::string bobs_;
};

TEST_F(MessageListTest, BothPathsListTheSamePages) {
  for (const ListQuery& query :
       {ListQuery{.page_size = 50},
        ListQuery{.page_size = 7, .order = Order::kDescending},
        ListQuery{.page_size = 50, .branch = Branch::kAll},
        ListQuery{.page_size = 33,
        .order = Order::kDescending,
        .branch = Branch::kAll}}) {
    std::vector<MessageRecord> pooled = All(*pooled_, busy_, query);
    std::vector<MessageRecord> read = All(*read_, busy_, query);
    EXPECT_EQ(pooled.size(), query.branch == Branch::kAll
                                 ? kMessages + kMessages / 10
                                 : kMessages);
    ASSERT_EQ(read.size(), pooled.size());
    for (size_t i = 0; i < read.size(); ++i) {
      SCOPED_TRACE(i);
      EXPECT_EQ(read[i].id, pooled[i].id);
      EXPECT_EQ(read[i].conversation_id, pooled[i].conversation_id);
      EXPECT_EQ(read[i].seq, pooled[i].seq);
      EXPECT_EQ(read[i].role, pooled[i].role);
      EXPECT_EQ(read[i].content, pooled[i].content);
      EXPECT_EQ(read[i].status, pooled[i].status);
      EXPECT_EQ(read[i].model, pooled[i].model);
      EXPECT_EQ(read[i].metadata, pooled[i].metadata);
      EXPECT_EQ(read[i].created_at, pooled[i].created_at);
      EXPECT_EQ(read[i].updated_at, pooled[i].updated_at);
      EXPECT_EQ(read[i].parent_id, pooled[i].parent_id);
      EXPECT_EQ(read[i].sibling_index, pooled[i].sibling_index);
      EXPECT_EQ(read[i].sibling_count, pooled[i].sibling_count);
    }
  }
}

TEST_F(MessageListTest, BothPathsAnswerTheSameErrors) {
  for (Messages* messages : {pooled_.get(), read_.get()}) {
    absl::StatusOr<MessagePage> empty = messages->List(kAlice, empty_, {});
    ASSERT_THAT(empty, IsOk());
    EXPECT_TRUE(empty->messages.empty());
    EXPECT_EQ(empty->next_page_token, "");
    EXPECT_THAT(messages->List(kAlice, kMissing, {}),
                StatusIs(absl::StatusCode::kNotFound));
    EXPECT_THAT(messages->List(kAlice, bobs_, {}),
                StatusIs(absl::StatusCode::kNotFound));
    EXPECT_THAT(messages->List(kAlice, "not-an-id", {}),
                StatusIs(absl::StatusCode::kNotFound));
    EXPECT_THAT(messages->List(kAlice, busy_, {.page_size = -1}),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
  db_->DeleteUser(kBob);
  for (Messages* messages : {pooled_.get(), read_.get()}) {
    EXPECT_THAT(messages->List(kBob, bobs_, {}),
                StatusIs(absl::StatusCode::kUnauthenticated));
  }
}

// 32 calls at a time, lists mixed with NOT_FOUNDs and empty pages, each
// answered from the reader's thread: every answer is its own call's.
TEST_F(MessageListTest, ParallelListsAndNotFoundsNeverMix) {
  constexpr int kThreads = 8;
  constexpr int kInFlight = 4;  // per thread
  constexpr int kRounds = 40;
  std::atomic<int> wrong{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kThreads; ++w) {
    workers.emplace_back([&, w] {
      for (int round = 0; round < kRounds; ++round) {
        std::vector<std::promise<void>> answered(kInFlight);
        for (int k = 0; k < kInFlight; ++k) {
          const int kind = (w + round + k) % 4;
          const std::string user = kind == 3 ? kBob : kAlice;
          const std::string conversation = kind == 0   ? busy_
                                           : kind == 1 ? kMissing
                                           : kind == 2 ? empty_
                                                       : bobs_;
          read_->ListAsync(
              user, conversation, {.page_size = 50},
              [&wrong, &answered, k, kind](absl::StatusOr<MessagePage> page) {
                const bool right =
                    kind == 1
                        ? page.status().code() == absl::StatusCode::kNotFound
                    : !page.ok() ? false
                    : kind == 0  ? page->messages.size() == 50 &&
                                      !page->next_page_token.empty()
                    : kind == 2 ? page->messages.empty()
                                : page->messages.size() == 1;
                if (!right) ++wrong;
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
}  // namespace chat::message
