#ifndef CHAT_DEPLOY_MIGRATE_MIGRATOR_H_
#define CHAT_DEPLOY_MIGRATE_MIGRATOR_H_

// Applies the schema migrations of deploy/migrations to a PostgreSQL
// database, once each, in version order.
//
// A migration is a file `NNNN_name.sql` (NNNN: its version, a positive
// number; name: [A-Za-z0-9_]+). Each runs in its own transaction together
// with its row in `schema_migrations(version, name, checksum, applied_at)`,
// so it is applied completely or not at all; such a file must therefore not
// contain BEGIN/COMMIT or statements that cannot run in a transaction block.
// A file is never edited once applied: the SHA-256 of every applied file is
// recorded and checked on every run.
//
// No-transaction files. A file whose first line is exactly
//
//   -- chat-migrate: no-transaction
//
// (nothing before or after it on that line, not even a space or a '\r')
// runs outside any transaction block instead, as one simple-protocol query,
// so that it can CALL a procedure that COMMITs inside itself (a backfill in
// batches) or run CREATE INDEX CONCURRENTLY. Such a file:
//   - must hold exactly ONE statement. The migrator does not parse SQL to
//     check this: PostgreSQL runs a query of several statements as one
//     implicit transaction, in which a COMMIT or CREATE INDEX CONCURRENTLY
//     fails (the error then says so).
//   - must be safe to run again after failing or being cut off part-way
//     (idempotent): whatever it committed before stays, and its row in
//     schema_migrations is inserted, in a short transaction of its own, only
//     after the statement has succeeded, so the next run runs the whole file
//     again. A procedure should skip the work already done (e.g. `WHERE NOT
//     EXISTS`); see deploy/README.md for CREATE INDEX CONCURRENTLY.
// Ordering, checksums, the advisory lock, the report and
// ApplyOptions::on_applied are as for other files. The marker anywhere but
// the first line is an ordinary comment: the file then runs in a
// transaction, where a COMMIT or CREATE INDEX CONCURRENTLY fails and is
// rolled back.
//
// Concurrent runs against one database are safe: a run holds a
// session-level advisory lock for its whole duration, so a second run waits
// and then finds nothing left to do. It waits by trying again (every 0.5 s
// at most) with no statement open in between, so that a CREATE INDEX
// CONCURRENTLY of the run holding the lock, which waits for every older
// snapshot, does not wait for the waiting run.
//
//   absl::StatusOr<chat::migrate::Migrator> migrator =
//       chat::migrate::Migrator::Create("deploy/migrations");
//   if (!migrator.ok()) return migrator.status();
//   absl::StatusOr<chat::migrate::MigrationReport> report =
//       migrator->Apply(admin_url, {{"chat_auth", auth_password}});

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace chat::migrate {

// The key of the session-level advisory lock a run holds ("chat_mig" in
// ASCII). Advisory locks are per database, so runs against different
// databases of one cluster do not wait for each other. Holding it from
// elsewhere keeps migrations out.
inline constexpr int64_t kAdvisoryLockKey = 0x636861745f6d6967;

// One migration file.
struct Migration {
  int version = 0;
  std::string name;      // "auth" for 0001_auth.sql
  std::string filename;  // "0001_auth.sql"
  std::string sql;
  std::string checksum;  // lower-case hex SHA-256 of `sql`
  // The first line of `sql` is exactly kNoTransactionMarker: runs outside a
  // transaction block (see the top of this file).
  bool no_transaction = false;
};

// The first line that makes a file a no-transaction migration.
inline constexpr char kNoTransactionMarker[] =
    "-- chat-migrate: no-transaction";

// A login password to set on a role after migrating. The role must exist
// (the migrations create the service roles).
struct RolePassword {
  std::string role;
  std::string password;
};

// OK when `password` may be set on a role: at least 16 characters and no
// placeholder of our examples ("CHANGE_ME", "placeholder", ...), so that a
// template's value is never set for real. INVALID_ARGUMENT naming the role
// (never the password) otherwise.
absl::Status CheckRolePassword(const RolePassword& password);

// What a successful run did.
struct MigrationReport {
  std::vector<int> applied;        // versions applied by this run, in order
  std::vector<int> already;        // versions found applied before this run
  std::vector<std::string> roles;  // roles whose password was set
};

struct ApplyOptions {
  // How long to wait for a concurrent run to release the lock.
  absl::Duration lock_timeout = absl::Minutes(5);
  // Called after each migration commits (a no-transaction one: after its
  // row in schema_migrations commits), with how long it took.
  std::function<void(const Migration&, absl::Duration)> on_applied;
};

// The lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

// The migrations of one directory, read once; `Apply` can run them against
// any number of databases.
class Migrator {
 public:
  // Reads every `*.sql` file of `migrations_dir`, sorted by version.
  // NOT_FOUND when the directory cannot be read; INVALID_ARGUMENT when a
  // .sql file is not named NNNN_name.sql, two files share a version, or there
  // is no migration at all. Other files are ignored.
  static absl::StatusOr<Migrator> Create(absl::string_view migrations_dir);

  // Connects to `database_url` (a libpq URL or key=value string of a role
  // that may create tables and alter roles), applies every migration not yet
  // recorded, then sets the given role passwords. Before applying anything it
  // verifies every recorded migration: a recorded version whose file is
  // missing or whose checksum differs is FAILED_PRECONDITION and nothing is
  // applied. A failing migration is reported with its file name and stops
  // the run (earlier ones of the same run stay applied). An ordinary file is
  // rolled back; a no-transaction file keeps whatever it committed before
  // failing and is not recorded, so the next run runs it again.
  //
  // Codes: UNAVAILABLE when the database cannot be reached (retry later),
  // DEADLINE_EXCEEDED when another run held the lock for longer than
  // `options.lock_timeout`, ABORTED when a migration hit a serialization
  // failure or deadlock (retry), FAILED_PRECONDITION otherwise.
  //
  // Passwords are sent to the server only as SCRAM-SHA-256 secrets, never
  // in clear text, and appear in no error message. A password that fails
  // CheckRolePassword is INVALID_ARGUMENT before anything is changed.
  absl::StatusOr<MigrationReport> Apply(
      absl::string_view database_url,
      const std::vector<RolePassword>& role_passwords = {},
      const ApplyOptions& options = {}) const;

  const std::vector<Migration>& migrations() const { return migrations_; }

 private:
  explicit Migrator(std::vector<Migration> migrations)
      : migrations_(std::move(migrations)) {}

  std::vector<Migration> migrations_;
};

// Migrator::Create(migrations_dir) and then Apply(database_url,
// role_passwords), for callers that need only success (tests, tools).
absl::Status Migrate(absl::string_view database_url,
                     absl::string_view migrations_dir,
                     const std::vector<RolePassword>& role_passwords = {});

}  // namespace chat::migrate

#endif  // CHAT_DEPLOY_MIGRATE_MIGRATOR_H_
