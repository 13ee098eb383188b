#ifndef CHAT_TESTS_INTEGRATION_TEST_DATABASE_H_
#define CHAT_TESTS_INTEGRATION_TEST_DATABASE_H_

// A fresh database for one test, on the throw-away PostgreSQL cluster whose
// admin URL is in TEST_DATABASE_URL, migrated with the production migration
// files; dropped when the test ends.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace chat::testing {

// `url` (a libpq URL or key=value string) with the given keywords replaced,
// as a key=value connection string: another database, user or password.
std::string WithConnectionKeywords(
    const std::string& url,
    const std::vector<std::pair<std::string, std::string>>& keywords);

// Configured() is true when TEST_DATABASE_URL is set. Tests skip only when it
// is not: with it set, a database that cannot be created or migrated fails
// them. DatabaseTest (database_test.h) is the fixture that does so.
class TestDatabase {
 public:
  static bool Configured();

  // FAILED_PRECONDITION when TEST_DATABASE_URL is unset.
  static absl::StatusOr<std::unique_ptr<TestDatabase>> Create();
  // A database migrated only with the files of `migrations_dir` (a test's
  // copy of the first production migrations), holding data of an older
  // schema until MigrateFully.
  static absl::StatusOr<std::unique_ptr<TestDatabase>> CreateMigratedWith(
      const std::string& migrations_dir);
  ~TestDatabase();

  // Applies the production migrations not applied yet.
  absl::Status MigrateFully();
  // Applies the migrations of `migrations_dir` not applied yet, one test
  // process at a time.
  absl::Status Migrate(const std::string& migrations_dir);

  // A superuser URL of the test database.
  const std::string& admin_url() const { return admin_url_; }
  // A URL of the test database that logs in as a service role
  // ("chat_auth", "chat_conversation", "chat_message").
  std::string RoleUrl(absl::string_view role) const;

  // Adds an account as the auth service would (email
  // "<username>@example.com", no usable password), for tests of the other
  // services' storage.
  void AddUser(absl::string_view id, absl::string_view username) const;
  // Deletes an account and, by cascade, everything it owns: what a deleted
  // account's still valid access token then meets.
  void DeleteUser(absl::string_view id) const;

 private:
  TestDatabase(std::string server_url, std::string name);
  std::string server_url_;  // TEST_DATABASE_URL
  std::string name_;
  std::string admin_url_;
};

}  // namespace chat::testing

#endif  // CHAT_TESTS_INTEGRATION_TEST_DATABASE_H_
