// DbReader, the pipelined reads of the listings, against a real PostgreSQL:
// each read shows only its caller's rows and says nothing (nullopt) for an
// account that does not exist, whatever ran before it on the same
// connection; an error ends one read, not the pipeline; a connection the
// server ends is replaced and its reads sent again; every read is answered
// exactly once, also when the database is away or the reader stops with
// reads under way. Also built under TSan and ASan by `make test-sanitize`.

#include "common/db_reader.h"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "tests/integration/database_test.h"
#include "tests/integration/read_test_data.h"
#include "tests/integration/test_database.h"

namespace chat {
namespace {

using ::chat::testing::reads::kAlice;
using ::chat::testing::reads::kAliceChats;
using ::chat::testing::reads::kBob;
using ::chat::testing::reads::kBobChats;
using ::chat::testing::reads::kDivide;
using ::chat::testing::reads::kDivideSql;
using ::chat::testing::reads::kEcho;
using ::chat::testing::reads::kEchoSql;
using ::chat::testing::reads::kMode;
using ::chat::testing::reads::kModeGeneric;
using ::chat::testing::reads::kModeSql;
using ::chat::testing::reads::kNobody;
using ::chat::testing::reads::kRole;
using ::chat::testing::reads::kTitles;
using ::chat::testing::reads::kTitlesSql;

constexpr char kSleep[] = "reader_sleep";
constexpr char kSleepSql[] =
    "SELECT pg_sleep($1::float8) FROM conversations LIMIT 1";

using Rows = DbReader::Rows;

// Waits for one read's answer.
template <typename... Args>
Rows ReadNow(DbReader& reader, const std::string& user, const char* statement,
             const Args&... args) {
  std::promise<Rows> answer;
  std::future<Rows> got = answer.get_future();
  reader.Read(
      user, statement,
      [&answer](Rows rows) { answer.set_value(std::move(rows)); }, args...);
  return got.get();
}

std::vector<std::string> Texts(const DbRows& rows) {
  std::vector<std::string> texts;
  for (int i = 0; i < rows.size(); ++i) {
    texts.push_back(DbColumnReader(rows, i).String());
  }
  return texts;
}

class DbReaderTest : public ::chat::testing::DatabaseTest {
 protected:
  void SetUpDatabase() override {
    ::chat::testing::reads::AddUsers(db_->admin_url());
  }

  std::unique_ptr<DbReader> Reader(int connections, std::string url = "",
                                   int threads = 1) {
    return DbReader::Create(
        {.url = url.empty() ? db_->RoleUrl(kRole) : url,
         .connections = connections,
         .threads = threads,
         .statement_timeout = absl::Seconds(2),
         .statements = {{kTitles, kTitlesSql},
                        {kEcho, kEchoSql},
                        {kDivide, kDivideSql},
                        {kSleep, kSleepSql},
                        {kModeGeneric, kModeSql, /*generic_plan=*/true},
                        {kMode, kModeSql}}});
  }

  int Count(const std::string& sql) {
    pqxx::connection admin(db_->admin_url());
    pqxx::nontransaction tx(admin);
    return tx.exec1(sql)[0].as<int>();
  }

  // Ends the reader's sessions from the server's side.
  int TerminateReaderSessions() {
    return Count(absl::StrCat(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE usename = '",
        kRole, "'"));
  }
};

TEST_F(DbReaderTest, ShowsOnlyTheCallersRows) {
  std::unique_ptr<DbReader> reader = Reader(1);
  Rows alice = ReadNow(*reader, kAlice, kTitles, std::string(""));
  ASSERT_TRUE(alice.ok()) << alice.status();
  ASSERT_TRUE(alice->has_value());
  EXPECT_EQ(Texts(**alice),
            (std::vector<std::string>{absl::StrCat(kAlice, "-1"),
                                      absl::StrCat(kAlice, "-2"),
                                      absl::StrCat(kAlice, "-3")}));
  Rows bob = ReadNow(*reader, kBob, kTitles, std::string(""));
  ASSERT_TRUE(bob.ok()) << bob.status();
  ASSERT_TRUE(bob->has_value());
  EXPECT_EQ((*bob)->size(), kBobChats);
}

TEST_F(DbReaderTest, AnAccountThatDoesNotExistReadsNothing) {
  std::unique_ptr<DbReader> reader = Reader(1);
  Rows rows = ReadNow(*reader, kNobody, kTitles, std::string(""));
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_FALSE(rows->has_value());
  // No rows for an account that exists: nullopt as well.
  rows = ReadNow(*reader, kBob, kDivide, 1);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_TRUE(rows->has_value());
  rows = ReadNow(*reader, "not-a-uuid", kTitles, std::string(""));
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_FALSE(rows->has_value());
}

TEST_F(DbReaderTest, ArgumentsAreValuesWhateverTheirText) {
  std::unique_ptr<DbReader> reader = Reader(1);
  for (const std::string& text :
       {std::string("x'); DELETE FROM conversations; --"),
        std::string("back\\slash \\' and ''quotes'' and $1 and ; "),
        std::string("\xE2\x80\x9Cunicode\xE2\x80\x9D \xF0\x9F\x92\xAC"),
        std::string("")}) {
    Rows rows =
        ReadNow(*reader, kAlice, kEcho, text, int64_t{-9007199254740993}, true,
                std::optional<std::string>());
    ASSERT_TRUE(rows.ok()) << rows.status();
    ASSERT_TRUE(rows->has_value());
    DbColumnReader column(**rows, 0);
    EXPECT_EQ(column.String(), text);
    EXPECT_EQ(column.As<int64_t>(), -9007199254740993);
    EXPECT_TRUE(column.As<bool>());
    EXPECT_TRUE(column.As<bool>());  // nullopt went as NULL
  }
  EXPECT_EQ(Count("SELECT count(*) FROM conversations"),
            kAliceChats + kBobChats);
  // A parameter is a C string: refused before anything is sent.
  EXPECT_EQ(ReadNow(*reader, kAlice, kEcho, std::string("a\0b", 3), int64_t{1},
                    true, std::optional<std::string>("x"))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// An error ends its own read; the reads behind it in the pipeline run, with
// no setting of the failed read left over.
TEST_F(DbReaderTest, AnErrorEndsOneReadNotThePipeline) {
  std::unique_ptr<DbReader> reader = Reader(1);
  std::vector<std::promise<Rows>> answers(4);
  auto keep = [&](int i) {
    return [&answers, i](Rows rows) { answers[i].set_value(std::move(rows)); };
  };
  // Sent back to back on the one connection.
  reader->Read(kAlice, kDivide, keep(0), 0);
  reader->Read(kNobody, kTitles, keep(1), std::string(""));
  reader->Read(kBob, kDivide, keep(2), 1);
  reader->Read(kAlice, kEcho, keep(3), std::string("bad"), std::string("x"),
               true, std::optional<std::string>());
  Rows failed = answers[0].get_future().get();
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInvalidArgument)
      << failed.status();
  Rows nobody = answers[1].get_future().get();
  ASSERT_TRUE(nobody.ok()) << nobody.status();
  EXPECT_FALSE(nobody->has_value());
  Rows bob = answers[2].get_future().get();
  ASSERT_TRUE(bob.ok()) << bob.status();
  ASSERT_TRUE(bob->has_value());
  EXPECT_EQ(DbColumnReader(**bob, 0).As<int>(), 1);
  // "x" is no bigint: the database refuses it.
  EXPECT_EQ(answers[3].get_future().get().status().code(),
            absl::StatusCode::kInvalidArgument);
  // The statement timeout holds on the reader's connections.
  EXPECT_EQ(ReadNow(*reader, kAlice, kSleep, 5.0).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  Rows after = ReadNow(*reader, kAlice, kTitles, std::string(""));
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_TRUE(after->has_value());
  EXPECT_EQ((*after)->size(), kAliceChats);
}

TEST_F(DbReaderTest, OnlyAGenericPlanStatementRunsWithItsGenericPlan) {
  std::unique_ptr<DbReader> reader = Reader(1);
  for (int round = 0; round < 2; ++round) {
    Rows generic = ReadNow(*reader, kAlice, kModeGeneric, 1);
    ASSERT_TRUE(generic.ok()) << generic.status();
    ASSERT_TRUE(generic->has_value());
    EXPECT_EQ(DbColumnReader(**generic, 0).String(), "force_generic_plan");
    Rows chosen = ReadNow(*reader, kAlice, kMode, 1);
    ASSERT_TRUE(chosen.ok()) << chosen.status();
    ASSERT_TRUE(chosen->has_value());
    EXPECT_EQ(DbColumnReader(**chosen, 0).String(), "auto");
  }
}

// The server ends every session of the reader: the next reads open new
// connections, and reads sent on the dead ones go again.
TEST_F(DbReaderTest, AConnectionTheServerEndsIsReplaced) {
  std::unique_ptr<DbReader> reader = Reader(2);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(ReadNow(*reader, kAlice, kTitles, std::string("")).ok());
  }
  ASSERT_GE(TerminateReaderSessions(), 1);
  constexpr int kReads = 20;
  std::vector<std::promise<Rows>> answers(kReads);
  for (int i = 0; i < kReads; ++i) {
    reader->Read(
        i % 2 == 0 ? kAlice : kBob, kTitles,
        [&answers, i](Rows rows) { answers[i].set_value(std::move(rows)); },
        std::string(""));
  }
  for (int i = 0; i < kReads; ++i) {
    Rows rows = answers[i].get_future().get();
    ASSERT_TRUE(rows.ok()) << i << ": " << rows.status();
    ASSERT_TRUE(rows->has_value());
    EXPECT_EQ((*rows)->size(), i % 2 == 0 ? kAliceChats : kBobChats);
  }
}

// Nothing listens: each read is answered UNAVAILABLE, none waits for long.
TEST_F(DbReaderTest, WithoutADatabaseReadsAreUnavailable) {
  std::unique_ptr<DbReader> reader =
      Reader(2, "postgresql://nobody:x@127.0.0.1:1/none?connect_timeout=2");
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(
        ReadNow(*reader, kAlice, kTitles, std::string("")).status().code(),
        absl::StatusCode::kUnavailable);
  }
}

// Many threads, three connections on two reader threads: every read sees
// exactly its caller's rows and its own plan cache mode, whatever ran before
// it on the connection, and is answered once.
TEST_F(DbReaderTest, ParallelReadsOfDifferentUsersNeverMix) {
  static constexpr int kThreads = 8;
  static constexpr int kRounds = 100;
  std::unique_ptr<DbReader> reader = Reader(3, "", /*threads=*/2);
  std::atomic<int> wrong{0};
  std::atomic<int> answered{0};
  std::promise<void> all_answered;
  std::vector<std::thread> workers;
  for (int w = 0; w < kThreads; ++w) {
    workers.emplace_back([&, w] {
      // Half the reads wait for their answer, half only count it: deep
      // pipelines as well as one read at a time.
      for (int round = 0; round < kRounds; ++round) {
        const int kind = (w + round) % 6;
        auto check = [&wrong, &answered, &all_answered, kind](Rows rows) {
          switch (kind) {
            case 0:
            case 1: {
              const int expected = kind == 0 ? kAliceChats : kBobChats;
              if (!rows.ok() || !rows->has_value() ||
                  (*rows)->size() != expected) {
                ++wrong;
              }
              break;
            }
            case 2:
              if (!rows.ok() || rows->has_value()) ++wrong;
              break;
            case 3:
              if (rows.ok()) ++wrong;
              break;
            default: {
              const char* mode = kind == 4 ? "force_generic_plan" : "auto";
              if (!rows.ok() || !rows->has_value() ||
                  DbColumnReader(**rows, 0).String() != mode) {
                ++wrong;
              }
            }
          }
          if (++answered == kThreads * kRounds) all_answered.set_value();
        };
        const char* user = kind == 0 || kind >= 4 ? kAlice
                           : kind == 2            ? kNobody
                                                  : kBob;
        auto read = [&](DbReader::Done done) {
          switch (kind) {
            case 3:
              reader->Read(user, kDivide, std::move(done), 0);
              break;
            case 4:
              reader->Read(user, kModeGeneric, std::move(done), 1);
              break;
            case 5:
              reader->Read(user, kMode, std::move(done), 1);
              break;
            default:
              reader->Read(user, kTitles, std::move(done), std::string(""));
          }
        };
        if (round % 2 == 0) {
          std::promise<void> done;
          read([&check, &done](Rows rows) {
            check(std::move(rows));
            done.set_value();
          });
          done.get_future().wait();
        } else {
          read(check);
        }
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  // The reads no thread waited for are answered too (a bound for a stuck
  // reader, not a pace: they come within milliseconds).
  ASSERT_EQ(all_answered.get_future().wait_for(std::chrono::minutes(2)),
            std::future_status::ready)
      << answered.load() << " answered";
  EXPECT_EQ(wrong.load(), 0);
}

// Stopping with reads queued and under way answers each of them once: with
// its rows, or UNAVAILABLE.
TEST_F(DbReaderTest, StoppingAnswersEveryReadOnce) {
  constexpr int kReads = 500;
  std::atomic<int> answered{0};
  std::atomic<int> wrong{0};
  {
    std::unique_ptr<DbReader> reader = Reader(2, "", /*threads=*/2);
    for (int i = 0; i < kReads; ++i) {
      reader->Read(
          kAlice, kTitles,
          [&](Rows rows) {
            ++answered;
            if (!rows.ok() &&
                rows.status().code() != absl::StatusCode::kUnavailable) {
              ++wrong;
            }
          },
          std::string(""));
    }
  }
  EXPECT_EQ(answered.load(), kReads);
  EXPECT_EQ(wrong.load(), 0);
  // And after the reader is gone, a new one reads as before.
  std::unique_ptr<DbReader> again = Reader(1);
  EXPECT_TRUE(ReadNow(*again, kBob, kTitles, std::string("")).ok());
}

}  // namespace
}  // namespace chat
