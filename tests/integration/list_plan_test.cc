// The message listings run with their generic plan (generic_plan in
// MessageStorage::Statements): one plan for every call, whatever its
// arguments, made from the table's statistics. That plan must read a page
// in index order whatever those statistics say: one conversation of 20,000
// messages among 400 of two (the average conversation is small), and one
// user with three conversations of 20,000 (the average is big). A plan that
// sorted the conversation, or scanned it whole, would read all of its
// messages for every page.

#include <cstdint>
#include <limits>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/db.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "services/message/message_storage.h"
#include "tests/integration/database_test.h"
#include "tests/integration/test_database.h"

namespace chat::message {
namespace {

constexpr char kUser[] = "0190f3a0-0000-7000-8000-0000000000a1";
constexpr char kBig[] = "0190f3a0-0000-7000-8000-0000000000b1";
constexpr int kBigMessages = 20000;
constexpr int kPageRows = 51;  // a page of 50 and one more, as the service
constexpr int64_t kContentBudget = 4 << 20;

class ListPlanTest : public ::chat::testing::DatabaseTest {
 protected:
  void SetUpDatabase() override {
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    tx.exec_params0(
        "INSERT INTO users (id, username, email, password_hash, created_at, "
        "updated_at) VALUES ($1::uuid, 'planner', 'planner@example.com', 'x', "
        "now(), now())",
        std::string(kUser));
    tx.commit();
  }

  // The user's conversations: kBig with kBigMessages messages, then others
  // (ids made from a number) of `others_size` messages each. Each is one
  // branch: every message the child of the one before it.
  void Seed(int others, int others_size) {
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    tx.exec_params0(
        "INSERT INTO conversations (user_id, id, title, untitled, created_at, "
        "updated_at) SELECT $1::uuid, c, 'chat', false, now(), now() FROM "
        "(SELECT $2::uuid UNION ALL SELECT md5('other' || g)::uuid "
        "FROM generate_series(1, $3) g) AS t(c)",
        std::string(kUser), std::string(kBig), others);
    tx.exec_params0(
        "INSERT INTO messages (user_id, conversation_id, seq, id, parent_id, "
        "active, role, content, status, created_at, updated_at) "
        "SELECT $1::uuid, c.id, g, md5(c.id::text || g)::uuid, "
        "CASE WHEN g = 1 THEN '00000000-0000-0000-0000-000000000000'::uuid "
        "ELSE md5(c.id::text || (g - 1))::uuid END, true, 'user', "
        "repeat('x', 200), 'complete', now(), now() "
        "FROM conversations c, generate_series(1, CASE WHEN c.id = $2::uuid "
        "THEN $3::int ELSE $4::int END) g WHERE c.user_id = $1::uuid",
        std::string(kUser), std::string(kBig), kBigMessages, others_size);
    tx.commit();
    pqxx::nontransaction analyze(admin);
    analyze.exec0("ANALYZE messages");
    analyze.exec0("ANALYZE conversations");
  }

  // Every marked listing of kBig, first page and a deep one, through its
  // generic plan as the service's role: the plan names the parameters, has
  // no sort and no scan of the conversation, and reads only its page.
  void ExpectEveryGenericPlanReadsOnlyItsPage() {
    pqxx::connection conn(db_->RoleUrl("chat_message"));
    pqxx::nontransaction session(conn);
    session.exec_params1("SELECT set_config('app.user_id', $1, false)",
                         std::string(kUser));
    session.exec0("SET plan_cache_mode = force_generic_plan");
    int checked = 0;
    for (const PreparedStatement& statement : MessageStorage::Statements()) {
      if (!statement.generic_plan) continue;
      ++checked;
      const std::string name = statement.name;
      SCOPED_TRACE(name);
      conn.prepare(name, statement.sql);
      const bool descending = name.find("desc") != std::string::npos;
      const int64_t first =
          descending ? std::numeric_limits<int64_t>::max() : 0;
      const int64_t deep =
          descending ? kBigMessages / 10 : kBigMessages * 9 / 10;
      for (const int64_t from : {first, deep}) {
        SCOPED_TRACE(from);
        // Several calls, as a pooled connection makes them; the plan is the
        // one made on the first.
        for (int call = 0; call < 6; ++call) {
          pqxx::result page = session.exec_prepared(name, kUser, kBig, from,
                                                    kPageRows, kContentBudget);
          ASSERT_EQ(page.size(), kPageRows);
        }
        std::string plan;
        for (const pqxx::row& line : session.exec(absl::StrCat(
                 "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                 "EXECUTE ",
                 name, "(", session.quote(std::string(kUser)), ", ",
                 session.quote(std::string(kBig)), ", ", from, ", ", kPageRows,
                 ", ", kContentBudget, ")"))) {
          absl::StrAppend(&plan, line[0].as<std::string>(), "\n");
        }
        // Generic: the conditions name the parameters, not this call's
        // values.
        EXPECT_NE(plan.find("$3"), std::string::npos) << plan;
        EXPECT_EQ(plan.find("Seq Scan"), std::string::npos) << plan;
        EXPECT_EQ(plan.find("Bitmap Heap Scan"), std::string::npos) << plan;
        EXPECT_EQ(plan.find("Sort"), std::string::npos) << plan;
        const int rows = RowsReadForThePage(plan);
        EXPECT_GE(rows, kPageRows) << plan;
        EXPECT_LE(rows, kPageRows + 1) << plan;
      }
    }
    EXPECT_EQ(checked, 4);
  }

  // The rows the scan of the listed conversation's messages returned, from
  // EXPLAIN ANALYZE's text: the node on "messages m_1" (the page's
  // subquery; the siblings' scan is on "messages x").
  static int RowsReadForThePage(const std::string& plan) {
    static const std::regex kScan(R"(on messages m_1 .*actual rows=(\d+))");
    std::smatch match;
    if (!std::regex_search(plan, match, kScan)) return -1;
    return std::stoi(match[1].str());
  }
};

TEST_F(ListPlanTest, ReadsOnlyThePageWhenTheAverageConversationIsSmall) {
  Seed(/*others=*/400, /*others_size=*/2);
  ExpectEveryGenericPlanReadsOnlyItsPage();
}

TEST_F(ListPlanTest, ReadsOnlyThePageWhenTheAverageConversationIsBig) {
  Seed(/*others=*/2, /*others_size=*/kBigMessages);
  ExpectEveryGenericPlanReadsOnlyItsPage();
}

}  // namespace
}  // namespace chat::message
