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

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "deploy/migrate/migrator.h"

namespace {

const char* NonEmptyEnv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

std::string EnvOr(const char* name, absl::string_view fallback) {
  const char* value = NonEmptyEnv(name);
  return value != nullptr ? std::string(value) : std::string(fallback);
}

absl::Duration EnvOr(const char* name, absl::Duration fallback) {
  absl::Duration parsed;
  const char* value = NonEmptyEnv(name);
  return value != nullptr && absl::ParseDuration(value, &parsed) ? parsed
                                                                 : fallback;
}

}  // namespace

ABSL_FLAG(std::string, migrations_dir,
          EnvOr("MIGRATIONS_DIR", "deploy/migrations"),
          "directory of NNNN_name.sql files (env MIGRATIONS_DIR)");
ABSL_FLAG(absl::Duration, lock_timeout,
          EnvOr("MIGRATE_LOCK_TIMEOUT", absl::Minutes(5)),
          "how long to wait for a concurrent run to finish "
          "(env MIGRATE_LOCK_TIMEOUT)");

namespace {

using Field = std::pair<absl::string_view, std::string>;

std::string JsonQuote(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

// One JSON object per line on stderr, in the services' format (common/log.h).
void Log(absl::string_view level, absl::string_view message,
         std::initializer_list<Field> fields = {}) {
  std::string line = absl::StrCat(
      "{\"ts\":",
      JsonQuote(absl::FormatTime("%Y-%m-%d%ET%H:%M:%E3SZ", absl::Now(),
                                 absl::UTCTimeZone())),
      ",\"level\":", JsonQuote(level),
      ",\"service\":\"migrate\",\"msg\":", JsonQuote(message));
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&line, ",", JsonQuote(key), ":", JsonQuote(value));
  }
  line += "}\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

// The secret in environment variable `name`, or else in the file named by
// `name`_FILE (trailing newlines removed); NOT_FOUND when neither is set.
absl::StatusOr<std::string> ReadSecret(const std::string& name) {
  if (const char* value = NonEmptyEnv(name.c_str())) return std::string(value);
  const std::string file_var = name + "_FILE";
  const char* path = NonEmptyEnv(file_var.c_str());
  if (path == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("set ", name, " or ", file_var, " in the environment"));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", file_var, " (", path, ")"));
  }
  std::string value = std::move(contents).str();
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) {
    value.pop_back();
  }
  return value;
}

int Fail(absl::string_view message, const absl::Status& status) {
  Log("error", message,
      {{"code", absl::StatusCodeToString(status.code())},
       {"error", std::string(status.message())}});
  return EXIT_FAILURE;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "chat-migrate: applies NNNN_name.sql migrations in order, once each, "
      "then sets the service roles' passwords. The admin URL comes from "
      "DATABASE_URL or DATABASE_URL_FILE; role passwords from "
      "CHAT_{AUTH,CONVERSATION,MESSAGE}_DB_PASSWORD[_FILE].");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    return Fail("unexpected arguments",
                absl::InvalidArgumentError(absl::StrCat(
                    "unexpected argument ", rest[1],
                    "; secrets come from the environment, never flags")));
  }

  absl::StatusOr<std::string> database_url = ReadSecret("DATABASE_URL");
  if (!database_url.ok()) return Fail("no database", database_url.status());

  constexpr std::pair<const char*, const char*> kRoles[] = {
      {"CHAT_AUTH_DB_PASSWORD", "chat_auth"},
      {"CHAT_CONVERSATION_DB_PASSWORD", "chat_conversation"},
      {"CHAT_MESSAGE_DB_PASSWORD", "chat_message"},
  };
  std::vector<chat::migrate::RolePassword> role_passwords;
  for (const auto& [variable, role] : kRoles) {
    absl::StatusOr<std::string> password = ReadSecret(variable);
    if (password.ok()) {
      role_passwords.push_back({role, *std::move(password)});
    } else if (!absl::IsNotFound(password.status()) ||
               NonEmptyEnv(absl::StrCat(variable, "_FILE").c_str())) {
      return Fail("cannot read a role password", password.status());
    }
  }

  const std::string dir = absl::GetFlag(FLAGS_migrations_dir);
  absl::StatusOr<chat::migrate::Migrator> migrator =
      chat::migrate::Migrator::Create(dir);
  if (!migrator.ok()) return Fail("bad migrations", migrator.status());

  chat::migrate::ApplyOptions options;
  options.lock_timeout = absl::GetFlag(FLAGS_lock_timeout);
  options.on_applied = [](const chat::migrate::Migration& m,
                          absl::Duration took) {
    Log("info", "applied migration",
        {{"version", absl::StrCat(m.version)},
         {"name", m.name},
         {"file", m.filename},
         {"checksum", m.checksum},
         {"duration_ms", absl::StrCat(absl::ToInt64Milliseconds(took))}});
  };
  absl::StatusOr<chat::migrate::MigrationReport> report =
      migrator->Apply(*database_url, role_passwords, options);
  if (!report.ok()) return Fail("migration failed", report.status());

  std::string roles;
  for (const std::string& role : report->roles) {
    absl::StrAppend(&roles, roles.empty() ? "" : ",", role);
  }
  Log("info", "database is up to date",
      {{"latest_version", absl::StrCat(migrator->migrations().back().version)},
       {"applied_now", absl::StrCat(report->applied.size())},
       {"applied_before", absl::StrCat(report->already.size())},
       {"role_passwords_set", roles}});
  return EXIT_SUCCESS;
}
