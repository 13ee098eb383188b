#include "tests/integration/test_database.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/ids.h"
#include "deploy/migrate/migrator.h"
#include "libpq-fe.h"
#include "pqxx/pqxx"

namespace chat::testing {
namespace {

// Every service role gets this password in the throw-away cluster.
constexpr char kRolePassword[] = "chat-test-role-password";

// The advisory lock that serialises test databases' migrations.
constexpr int64_t kClusterLockKey = 7215330001;

}  // namespace

std::string WithConnectionKeywords(
    const std::string& url,
    const std::vector<std::pair<std::string, std::string>>& set) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return url;
  }
  std::string out;
  auto append = [&out](absl::string_view key, absl::string_view value) {
    absl::StrAppend(&out, out.empty() ? "" : " ", key, "='",
                    absl::StrReplaceAll(value, {{"\\", "\\\\"}, {"'", "\\'"}}),
                    "'");
  };
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    bool overridden = false;
    for (const auto& [key, value] : set) overridden |= key == o->keyword;
    if (!overridden && o->val != nullptr && *o->val != '\0')
      append(o->keyword, o->val);
  }
  for (const auto& [key, value] : set) append(key, value);
  PQconninfoFree(options);
  return out;
}

bool TestDatabase::Configured() {
  const char* server_url = std::getenv("TEST_DATABASE_URL");
  return server_url != nullptr && *server_url != '\0';
}

absl::StatusOr<std::unique_ptr<TestDatabase>> TestDatabase::Create() {
  return CreateMigratedWith(CHAT_MIGRATIONS_DIR);
}

absl::StatusOr<std::unique_ptr<TestDatabase>> TestDatabase::CreateMigratedWith(
    const std::string& migrations_dir) {
  const char* server_url = std::getenv("TEST_DATABASE_URL");
  if (!Configured()) {
    return absl::FailedPreconditionError(
        "TEST_DATABASE_URL is unset; `make test` starts a throw-away "
        "PostgreSQL");
  }
  std::string name =
      absl::StrCat("test_", absl::StrReplaceAll(NewUuidV7(), {{"-", ""}}));
  try {
    // Under the cluster lock, as before: CREATE DATABASE copies template1,
    // which no concurrent migration may be connected to.
    pqxx::connection admin(server_url);
    pqxx::nontransaction tx(admin);
    tx.exec(absl::StrCat("SELECT pg_advisory_lock(", kClusterLockKey, ")"));
    tx.exec0(absl::StrCat("CREATE DATABASE ", tx.quote_name(name)));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot create a database: ", e.what()));
  }
  std::unique_ptr<TestDatabase> db(new TestDatabase(server_url, name));
  absl::Status migrated = db->Migrate(migrations_dir);
  if (!migrated.ok()) return migrated;
  return db;
}

absl::Status TestDatabase::MigrateFully() {
  return Migrate(CHAT_MIGRATIONS_DIR);
}

absl::Status TestDatabase::Migrate(const std::string& migrations_dir) {
  // Roles are the cluster's, not a database's: test processes that migrate
  // their databases at once would alter the same roles concurrently ("tuple
  // concurrently updated"). One lock in the server's database, held until
  // this migration ends, makes them take turns.
  std::unique_ptr<pqxx::connection> lock;
  try {
    lock = std::make_unique<pqxx::connection>(server_url_);
    pqxx::nontransaction tx(*lock);
    tx.exec(absl::StrCat("SELECT pg_advisory_lock(", kClusterLockKey, ")"));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot lock the cluster for migrating: ", e.what()));
  }
  return migrate::Migrate(admin_url_, migrations_dir,
                          {{"chat_auth", kRolePassword},
                           {"chat_conversation", kRolePassword},
                           {"chat_message", kRolePassword}});
}

TestDatabase::TestDatabase(std::string server_url, std::string name)
    : server_url_(std::move(server_url)),
      name_(std::move(name)),
      admin_url_(WithConnectionKeywords(server_url_, {{"dbname", name_}})) {}

TestDatabase::~TestDatabase() {
  try {
    pqxx::connection admin(server_url_);
    pqxx::nontransaction tx(admin);
    tx.exec0(absl::StrCat("DROP DATABASE IF EXISTS ", tx.quote_name(name_),
                          " WITH (FORCE)"));
  } catch (const std::exception&) {
    // A leftover database in a throw-away cluster is harmless.
  }
}

std::string TestDatabase::RoleUrl(absl::string_view role) const {
  return WithConnectionKeywords(
      admin_url_, {{"user", std::string(role)}, {"password", kRolePassword}});
}

void TestDatabase::AddUser(absl::string_view id,
                           absl::string_view username) const {
  pqxx::connection admin(admin_url_);
  pqxx::work tx(admin);
  tx.exec_params0(
      "INSERT INTO users (id, username, email, password_hash, created_at, "
      "updated_at) VALUES ($1::uuid, $2, $2 || '@example.com', 'x', now(), "
      "now())",
      std::string(id), std::string(username));
  tx.commit();
}

void TestDatabase::DeleteUser(absl::string_view id) const {
  pqxx::connection admin(admin_url_);
  pqxx::work tx(admin);
  tx.exec_params0("DELETE FROM users WHERE id = $1::uuid", std::string(id));
  tx.commit();
}

}  // namespace chat::testing
