#include "deploy/migrate/migrator.h"

#include <libpq-fe.h>
#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/db_errors.h"
#include "pqxx/pqxx"

namespace chat::migrate {
namespace {

constexpr char kCreateTable[] = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  checksum   text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
))sql";
constexpr char kSelectApplied[] =
    "SELECT version, name, checksum FROM schema_migrations ORDER BY version";
constexpr char kInsertApplied[] =
    "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
    "VALUES ($1, $2, $3, now())";

struct AppliedRow {
  std::string name;
  std::string checksum;
};

// "4 -> 0004" for messages, matching the file names.
std::string VersionLabel(int version) {
  return absl::StrFormat("%04d", version);
}

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

// Parses "NNNN_name.sql"; false when the name does not have that shape.
bool ParseFilename(absl::string_view filename, int* version,
                   std::string* name) {
  absl::string_view rest = filename;
  if (!absl::ConsumeSuffix(&rest, ".sql")) return false;
  const size_t underscore = rest.find('_');
  if (underscore == absl::string_view::npos || underscore == 0) return false;
  absl::string_view digits = rest.substr(0, underscore);
  absl::string_view base = rest.substr(underscore + 1);
  if (!std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit) ||
      base.empty() || !std::all_of(base.begin(), base.end(), IsNameChar)) {
    return false;
  }
  if (!absl::SimpleAtoi(digits, version) || *version <= 0) return false;
  *name = std::string(base);
  return true;
}

// The first line of a server message, without "ERROR:  " and trailing space:
// enough to say what went wrong, never a statement's text.
std::string FirstLine(absl::string_view what) {
  absl::string_view line = what.substr(0, what.find('\n'));
  absl::ConsumePrefix(&line, "ERROR:");
  return std::string(absl::StripAsciiWhitespace(line));
}

// The whole server message (with its LINE/DETAIL/HINT context) for errors in
// migration files, which hold no secrets.
std::string Trimmed(absl::string_view what) {
  absl::string_view text = absl::StripAsciiWhitespace(what);
  absl::ConsumePrefix(&text, "ERROR:");
  return std::string(absl::StripLeadingAsciiWhitespace(text));
}

// A libpqxx exception thrown while doing `what`, as a status for the
// operator: the code is common/db_errors.h's, except that a statement the
// database refuses (a migration that cannot apply as written) is
// FAILED_PRECONDITION with its SQLSTATE, since someone must change something.
absl::Status StatusFromException(absl::string_view what,
                                 std::exception_ptr exception,
                                 bool whole_message) {
  try {
    std::rethrow_exception(exception);
  } catch (const std::exception& e) {
    const std::string described =
        whole_message ? Trimmed(e.what()) : FirstLine(e.what());
    if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
      return absl::UnavailableError(
          absl::StrCat(what,
                       ": the connection broke during COMMIT, so the outcome "
                       "is unknown; run again to find out: ",
                       described));
    }
    const absl::StatusCode code = DbErrorCode(e);
    const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
    switch (code) {
      case absl::StatusCode::kUnavailable:
      case absl::StatusCode::kAborted:
      case absl::StatusCode::kDeadlineExceeded:
        return absl::Status(code, absl::StrCat(what, ": ", described));
      default:
        if (sql == nullptr) {
          return absl::InternalError(absl::StrCat(what, ": ", described));
        }
        return absl::FailedPreconditionError(absl::StrCat(
            what, ": ", described, " (SQLSTATE ", sql->sqlstate(), ")"));
    }
  }
}

// What to add to the error of migration `m` when its statement could not run
// where it ran: COMMIT inside a procedure (invalid_transaction_termination,
// 2D000) or a statement refused inside a transaction block
// (active_sql_transaction, 25001, e.g. CREATE INDEX CONCURRENTLY).
std::string TransactionHint(const Migration& m, std::exception_ptr exception) {
  std::string sqlstate;
  try {
    std::rethrow_exception(exception);
  } catch (const pqxx::sql_error& e) {
    sqlstate = e.sqlstate();
  } catch (...) {
  }
  if (sqlstate != "2D000" && sqlstate != "25001") return "";
  if (m.no_transaction) {
    return ". A no-transaction file must hold exactly one statement "
           "(PostgreSQL runs several as one implicit transaction), and a "
           "procedure that COMMITs must have no SET clause";
  }
  return absl::StrCat(
      ". To COMMIT inside a procedure or run a statement that cannot run in "
      "a transaction block, the file's first line must be exactly \"",
      kNoTransactionMarker, "\" (see deploy/migrate/migrator.h)");
}

// Runs migration `m` and records it in schema_migrations: an ordinary file
// in one transaction with its row; a no-transaction file as one
// simple-protocol query outside any transaction block, then its row in a
// transaction of its own.
absl::Status ApplyOne(pqxx::connection& conn, const Migration& m) {
  if (!m.no_transaction) {
    try {
      pqxx::work tx(conn);
      tx.exec(m.sql);
      tx.exec_params0(kInsertApplied, m.version, m.name, m.checksum);
      tx.commit();
    } catch (...) {
      const absl::Status status = StatusFromException(
          absl::StrCat("migration ", m.filename, " failed and was rolled back"),
          std::current_exception(), true);
      return absl::Status(
          status.code(),
          absl::StrCat(status.message(),
                       TransactionHint(m, std::current_exception())));
    }
    return absl::OkStatus();
  }

  try {
    // A nontransaction sends the file as it is (PQexec): no BEGIN around it.
    pqxx::nontransaction tx(conn);
    tx.exec(m.sql);
    tx.commit();
  } catch (...) {
    const absl::Status status = StatusFromException(
        absl::StrCat("migration ", m.filename,
                     " failed. It is a no-transaction file, so it may have "
                     "committed part of its work, which stays; it is not "
                     "recorded as applied, and the next run runs it again "
                     "from the start"),
        std::current_exception(), true);
    return absl::Status(
        status.code(),
        absl::StrCat(status.message(),
                     TransactionHint(m, std::current_exception())));
  }
  try {
    pqxx::work tx(conn);
    tx.exec_params0(kInsertApplied, m.version, m.name, m.checksum);
    tx.commit();
  } catch (...) {
    return StatusFromException(
        absl::StrCat("migration ", m.filename,
                     " (no-transaction) ran to completion but could not be "
                     "recorded in schema_migrations; the next run runs it "
                     "again"),
        std::current_exception(), true);
  }
  return absl::OkStatus();
}

// The SCRAM-SHA-256 secret of `password` for `role`, made by libpq itself
// (with SASLprep, as the server expects), so that ALTER ROLE carries no
// clear-text password to the server and its logs.
absl::StatusOr<std::string> ScramSecret(absl::string_view database_url,
                                        const std::string& role,
                                        const std::string& password) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(
      PQconnectdb(std::string(database_url).c_str()), &PQfinish);
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to hash a role password: ",
                     conn == nullptr ? "out of memory"
                                     : FirstLine(PQerrorMessage(conn.get()))));
  }
  char* secret = PQencryptPasswordConn(conn.get(), password.c_str(),
                                       role.c_str(), "scram-sha-256");
  if (secret == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot hash the password of role ", role, ": ",
                     FirstLine(PQerrorMessage(conn.get()))));
  }
  std::string result(secret);
  PQfreemem(secret);
  return result;
}

}  // namespace

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(),
                 nullptr) != 1) {
    return "";
  }
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    absl::StrAppendFormat(&hex, "%02x", digest[i]);
  }
  return hex;
}

absl::StatusOr<Migrator> Migrator::Create(absl::string_view migrations_dir) {
  namespace fs = std::filesystem;
  const fs::path dir{std::string(migrations_dir)};
  std::error_code error;
  fs::directory_iterator it(dir, error);
  if (error) {
    return absl::NotFoundError(absl::StrCat("cannot read migrations directory ",
                                            dir.string(), ": ",
                                            error.message()));
  }
  std::vector<Migration> migrations;
  for (const fs::directory_entry& entry : it) {
    const std::string filename = entry.path().filename().string();
    if (!absl::EndsWith(filename, ".sql")) continue;
    Migration m;
    if (!ParseFilename(filename, &m.version, &m.name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "migration file ", filename,
          " is not named NNNN_name.sql (NNNN a positive number, name of "
          "[A-Za-z0-9_])"));
    }
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream contents;
    contents << in.rdbuf();
    if (!in) {
      return absl::NotFoundError(
          absl::StrCat("cannot read migration file ", entry.path().string()));
    }
    m.filename = filename;
    m.sql = std::move(contents).str();
    m.checksum = Sha256Hex(m.sql);
    m.no_transaction = absl::string_view(m.sql).substr(0, m.sql.find('\n')) ==
                       kNoTransactionMarker;
    migrations.push_back(std::move(m));
  }
  if (migrations.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no NNNN_name.sql migration files in ", dir.string()));
  }
  std::sort(migrations.begin(), migrations.end(),
            [](const Migration& a, const Migration& b) {
              return a.version < b.version;
            });
  for (size_t i = 1; i < migrations.size(); ++i) {
    if (migrations[i].version == migrations[i - 1].version) {
      return absl::InvalidArgumentError(
          absl::StrCat("migration files ", migrations[i - 1].filename, " and ",
                       migrations[i].filename, " share version ",
                       VersionLabel(migrations[i].version)));
    }
  }
  return Migrator(std::move(migrations));
}

absl::Status CheckRolePassword(const RolePassword& password) {
  constexpr size_t kMinLength = 16;
  constexpr absl::string_view kPlaceholders[] = {
      "change_me", "change-me", "changeme", "placeholder", "example"};
  const std::string lower = absl::AsciiStrToLower(password.password);
  bool placeholder = false;
  for (absl::string_view word : kPlaceholders) {
    placeholder |= absl::StrContains(lower, word);
  }
  if (password.password.size() < kMinLength || placeholder) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the password for role ", password.role,
        " is a placeholder or shorter than 16 characters; set a real one"));
  }
  return absl::OkStatus();
}

absl::StatusOr<MigrationReport> Migrator::Apply(
    absl::string_view database_url,
    const std::vector<RolePassword>& role_passwords,
    const ApplyOptions& options) const {
  for (const RolePassword& password : role_passwords) {
    if (absl::Status ok = CheckRolePassword(password); !ok.ok()) return ok;
  }
  MigrationReport report;
  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = std::make_unique<pqxx::connection>(std::string(database_url));
    pqxx::nontransaction tx(*conn);
    // CREATE TABLE IF NOT EXISTS and the migrations' own NOTICEs would
    // otherwise be printed by libpqxx between our JSON log lines.
    tx.exec0("SET client_min_messages = warning");
    tx.commit();
  } catch (...) {
    return StatusFromException("cannot connect to the database",
                               std::current_exception(), false);
  }
  // Waits by trying again and again rather than by pg_advisory_lock, so that
  // no statement (and so no snapshot) of ours is open while we wait: a
  // CREATE INDEX CONCURRENTLY of the run holding the lock waits for every
  // older snapshot, and would deadlock with a waiting pg_advisory_lock.
  const absl::Time deadline = absl::Now() + options.lock_timeout;
  absl::Duration pause = absl::Milliseconds(10);
  for (;;) {
    bool locked = false;
    try {
      pqxx::nontransaction tx(*conn);
      locked = tx.exec1(absl::StrCat("SELECT pg_try_advisory_lock(",
                                     kAdvisoryLockKey, ")"))[0]
                   .as<bool>();
      tx.commit();
    } catch (...) {
      return StatusFromException("cannot lock the database for migrating",
                                 std::current_exception(), false);
    }
    if (locked) break;
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "cannot lock the database for migrating: another run has held the "
          "advisory lock for longer than ",
          absl::FormatDuration(options.lock_timeout), "; retry later"));
    }
    absl::SleepFor(std::min(pause, deadline - now));
    pause = std::min(2 * pause, absl::Milliseconds(500));
  }
  // From here on the session holds the lock; closing the connection (also on
  // every error path below) releases it.

  std::map<int, AppliedRow> applied;
  try {
    pqxx::work tx(*conn);
    tx.exec0(kCreateTable);
    for (const pqxx::row& row : tx.exec(kSelectApplied)) {
      applied[row[0].as<int>()] =
          AppliedRow{row[1].as<std::string>(), row[2].as<std::string>()};
    }
    tx.commit();
  } catch (...) {
    return StatusFromException("cannot read schema_migrations",
                               std::current_exception(), true);
  }

  std::map<int, const Migration*> by_version;
  for (const Migration& m : migrations_) by_version[m.version] = &m;
  std::vector<std::string> problems;
  for (const auto& [version, row] : applied) {
    auto it = by_version.find(version);
    if (it == by_version.end()) {
      problems.push_back(absl::StrCat(
          "migration ", VersionLabel(version), "_", row.name,
          ".sql is applied to the database but missing from the migrations "
          "directory"));
    } else if (it->second->checksum != row.checksum) {
      problems.push_back(absl::StrCat(
          "migration ", it->second->filename,
          " was changed after it was applied (checksum applied ", row.checksum,
          ", file ", it->second->checksum,
          "); add a new migration instead of editing an applied one"));
    }
    report.already.push_back(version);
  }
  if (!problems.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(absl::StrJoin(problems, "; "), ". Nothing was applied."));
  }

  for (const Migration& m : migrations_) {
    if (applied.contains(m.version)) continue;
    const absl::Time start = absl::Now();
    if (absl::Status applied_one = ApplyOne(*conn, m); !applied_one.ok()) {
      return applied_one;
    }
    report.applied.push_back(m.version);
    if (options.on_applied) options.on_applied(m, absl::Now() - start);
  }

  try {
    pqxx::nontransaction tx(*conn);
    tx.exec(absl::StrCat("SELECT pg_advisory_unlock(", kAdvisoryLockKey, ")"));
    tx.commit();
  } catch (...) {
    return StatusFromException("cannot unlock the database",
                               std::current_exception(), false);
  }

  for (const RolePassword& rp : role_passwords) {
    absl::StatusOr<std::string> secret =
        ScramSecret(database_url, rp.role, rp.password);
    if (!secret.ok()) return secret.status();
    try {
      pqxx::nontransaction tx(*conn);
      tx.exec0(absl::StrCat("ALTER ROLE ", tx.quote_name(rp.role),
                            " WITH LOGIN PASSWORD ", tx.quote(*secret)));
      tx.commit();
    } catch (...) {
      // Only the first line: a syntax error's context would quote the
      // statement.
      return StatusFromException(
          absl::StrCat("cannot set the password of role ", rp.role),
          std::current_exception(), false);
    }
    report.roles.push_back(rp.role);
  }
  return report;
}

absl::Status Migrate(absl::string_view database_url,
                     absl::string_view migrations_dir,
                     const std::vector<RolePassword>& role_passwords) {
  absl::StatusOr<Migrator> migrator = Migrator::Create(migrations_dir);
  if (!migrator.ok()) return migrator.status();
  return migrator->Apply(database_url, role_passwords).status();
}

}  // namespace chat::migrate
