#include "common/external_users.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/email.h"
#include "common/ids.h"

namespace chat {
namespace {

// deploy/migrations/0004_least_privilege.sql: the services cannot insert
// users themselves; the function refuses an id of a local account.
constexpr char kEnsure[] = "external_user_ensure";
constexpr char kEnsureSql[] =
    "SELECT ensure_external_user($1::uuid, $2, $3, $4)";

absl::Status NotThisIssuers() {
  return absl::UnauthenticatedError("invalid access token");
}

}  // namespace

std::vector<PreparedStatement> ExternalUsers::Statements() {
  return {{kEnsure, kEnsureSql}};
}

absl::Status ExternalUsers::Ensure(const AccessClaims& claims) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (seen_.count(claims.subject) > 0) return absl::OkStatus();
  }
  // Our rows are keyed by UUID; a provider whose subjects are not UUIDs is
  // not one this service can serve.
  if (!IsUuid(claims.subject)) return NotThisIssuers();
  const std::string subject = absl::AsciiStrToLower(claims.subject);
  const std::string username =
      absl::StrCat("ext_", absl::StrReplaceAll(subject, {{"-", ""}}));
  // An address that is not valid is not stored: it could pass for a local
  // username at login.
  const std::string email =
      IsValidEmailAddress(claims.email) ? claims.email : "";
  const std::string placeholder_email =
      absl::StrCat(subject, "@external.invalid");
  absl::StatusOr<bool> external =
      pool_->Transact<bool>("", [&](pqxx::work& tx) -> absl::StatusOr<bool> {
        return tx
            .exec_prepared1(kEnsure, subject, username, email,
                            placeholder_email)[0]
            .as<bool>();
      });
  if (!external.ok()) return external.status();
  // The id of a local account: an external token never acts as one.
  if (!*external) return NotThisIssuers();
  std::lock_guard<std::mutex> lock(mutex_);
  seen_.insert(claims.subject);
  return absl::OkStatus();
}

}  // namespace chat
