// chat-migrate: applies deploy/migrations to the database of DATABASE_URL
// and sets the service roles' passwords. Run it before starting the services
// (`make run` does), or as a Kubernetes Job.
//
// Secrets come only from the environment or files:
//   DATABASE_URL or DATABASE_URL_FILE           admin URL (required)
//   CHAT_AUTH_DB_PASSWORD[_FILE]                password of role chat_auth
//   CHAT_CONVERSATION_DB_PASSWORD[_FILE]        password of chat_conversation
//   CHAT_MESSAGE_DB_PASSWORD[_FILE]             password of chat_message
// Logs are JSON lines on stderr; the exit status is 0 on success.

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/log.h"
#include "deploy/migrate/migrator.h"

using chat::EnvOr;

ABSL_FLAG(std::string, migrations_dir,
          EnvOr("MIGRATIONS_DIR", "deploy/migrations"),
          "directory of NNNN_name.sql files (env MIGRATIONS_DIR)");
ABSL_FLAG(absl::Duration, lock_timeout,
          EnvOr("MIGRATE_LOCK_TIMEOUT", absl::Minutes(5)),
          "how long to wait for a concurrent run to finish "
          "(env MIGRATE_LOCK_TIMEOUT)");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "chat-migrate: applies NNNN_name.sql migrations in order, once each, "
      "then sets the service roles' passwords. The admin URL comes from "
      "DATABASE_URL or DATABASE_URL_FILE; role passwords from "
      "CHAT_{AUTH,CONVERSATION,MESSAGE}_DB_PASSWORD[_FILE].");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  chat::log::SetServiceName("migrate");
  if (rest.size() > 1) {
    return chat::log::Failure(
        "unexpected arguments",
        absl::InvalidArgumentError(
            absl::StrCat("unexpected argument ", rest[1],
                         "; secrets come from the environment, never flags")));
  }

  absl::StatusOr<std::string> database_url = chat::ReadSecret("DATABASE_URL");
  if (!database_url.ok())
    return chat::log::Failure("no database", database_url.status());

  constexpr std::pair<const char*, const char*> kRoles[] = {
      {"CHAT_AUTH_DB_PASSWORD", "chat_auth"},
      {"CHAT_CONVERSATION_DB_PASSWORD", "chat_conversation"},
      {"CHAT_MESSAGE_DB_PASSWORD", "chat_message"},
  };
  std::vector<chat::migrate::RolePassword> role_passwords;
  for (const auto& [variable, role] : kRoles) {
    absl::StatusOr<std::string> password = chat::ReadSecret(variable);
    if (password.ok()) {
      role_passwords.push_back({role, *std::move(password)});
    } else if (!absl::IsNotFound(password.status()) ||
               !chat::EnvOr(absl::StrCat(variable, "_FILE").c_str(), "")
                    .empty()) {
      return chat::log::Failure("cannot read a role password",
                                password.status());
    }
  }

  const std::string dir = absl::GetFlag(FLAGS_migrations_dir);
  absl::StatusOr<chat::migrate::Migrator> migrator =
      chat::migrate::Migrator::Create(dir);
  if (!migrator.ok())
    return chat::log::Failure("bad migrations", migrator.status());

  chat::migrate::ApplyOptions options;
  options.lock_timeout = absl::GetFlag(FLAGS_lock_timeout);
  options.on_applied = [](const chat::migrate::Migration& m,
                          absl::Duration took) {
    const std::string version = absl::StrCat(m.version);
    const std::string millis = absl::StrCat(absl::ToInt64Milliseconds(took));
    chat::log::Info("applied migration", {{"version", version},
                                          {"name", m.name},
                                          {"file", m.filename},
                                          {"checksum", m.checksum},
                                          {"duration_ms", millis}});
  };
  absl::StatusOr<chat::migrate::MigrationReport> report =
      migrator->Apply(*database_url, role_passwords, options);
  if (!report.ok())
    return chat::log::Failure("migration failed", report.status());

  std::string roles;
  for (const std::string& role : report->roles) {
    absl::StrAppend(&roles, roles.empty() ? "" : ",", role);
  }
  const std::string latest =
      absl::StrCat(migrator->migrations().back().version);
  const std::string applied_now = absl::StrCat(report->applied.size());
  const std::string applied_before = absl::StrCat(report->already.size());
  chat::log::Info("database is up to date", {{"latest_version", latest},
                                             {"applied_now", applied_now},
                                             {"applied_before", applied_before},
                                             {"role_passwords_set", roles}});
  return EXIT_SUCCESS;
}
