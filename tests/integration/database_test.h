#ifndef CHAT_TESTS_INTEGRATION_DATABASE_TEST_H_
#define CHAT_TESTS_INTEGRATION_DATABASE_TEST_H_

// The fixture of tests that need a database: a fresh one, migrated, in db_;
// the test skips when TEST_DATABASE_URL is unset and fails when it is set but
// the database cannot be made.

#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "tests/integration/test_database.h"

namespace chat::testing {

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() final {
    if (!TestDatabase::Configured())
      GTEST_SKIP() << "TEST_DATABASE_URL is unset";
    absl::StatusOr<std::unique_ptr<TestDatabase>> db = TestDatabase::Create();
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    SetUpDatabase();
  }

  // What the test adds to the migrated database: rows, pools, storages.
  virtual void SetUpDatabase() {}

  // A member of the base, so dropped after the fixture's own pools close.
  std::unique_ptr<TestDatabase> db_;
};

}  // namespace chat::testing

#endif  // CHAT_TESTS_INTEGRATION_DATABASE_TEST_H_
