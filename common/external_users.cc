#include "common/external_users.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace chat {
namespace {

// No password hash can ever match "!": the row cannot log in here.
constexpr char kInsert[] = "external_user_insert";
constexpr char kInsertSql[] =
    "INSERT INTO users (id, username, email, password_hash, created_at, "
    "updated_at) "
    "VALUES ($1::uuid, $2, $3, '!', now(), now()) ON CONFLICT DO NOTHING";

}  // namespace

std::vector<PreparedStatement> ExternalUsers::Statements() {
  return {{kInsert, kInsertSql}};
}

absl::Status ExternalUsers::Ensure(const AccessClaims& claims) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (seen_.count(claims.subject) > 0) return absl::OkStatus();
  }
  const std::string username =
      absl::StrCat("ext_", absl::StrReplaceAll(claims.subject, {{"-", ""}}));
  const std::string placeholder_email =
      absl::StrCat(claims.subject, "@external.invalid");
  absl::Status status = pool_->Transact("", [&](pqxx::work& tx) {
    // The provider's email when it is free here, else a placeholder.
    if (claims.email.empty() ||
        tx.exec_prepared(kInsert, claims.subject, username, claims.email)
                .affected_rows() == 0) {
      tx.exec_prepared(kInsert, claims.subject, username, placeholder_email);
    }
    return absl::OkStatus();
  });
  if (status.ok()) {
    std::lock_guard<std::mutex> lock(mutex_);
    seen_.insert(claims.subject);
  }
  return status;
}

}  // namespace chat
