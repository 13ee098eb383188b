#include "services/auth/auth_storage.h"

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/status_macros.h"

namespace chat::auth {
namespace {

#define USER_COLUMNS                                     \
  "id::text, username, email, password_hash, "           \
  "(extract(epoch FROM created_at) * 1000000)::bigint, " \
  "(extract(epoch FROM updated_at) * 1000000)::bigint"

constexpr char kInsertUser[] = "auth_insert_user";
constexpr char kInsertUserSql[] =
    "INSERT INTO users (id, username, email, password_hash, created_at, "
    "updated_at) "
    "VALUES ($1::uuid, $2, $3, $4, $5::timestamptz, $5::timestamptz) "
    "RETURNING " USER_COLUMNS;

// Which of a username and an email another account already uses.
constexpr char kConflicts[] = "auth_conflicts";
constexpr char kConflictsSql[] =
    "SELECT COALESCE(bool_or(lower(username) = lower($2)), false), "
    "       COALESCE(bool_or(lower(email) = lower($3)), false) "
    "FROM users WHERE id <> $1::uuid "
    "AND (lower(username) = lower($2) OR lower(email) = lower($3))";

constexpr char kUserByLogin[] = "auth_user_by_login";
constexpr char kUserByLoginSql[] =
    "SELECT " USER_COLUMNS
    " FROM users "
    "WHERE lower(username) = lower($1) OR lower(email) = lower($1) LIMIT 1";

constexpr char kUserById[] = "auth_user_by_id";
constexpr char kUserByIdSql[] =
    "SELECT " USER_COLUMNS " FROM users WHERE id = $1::uuid";

constexpr char kUpdateUser[] = "auth_update_user";
constexpr char kUpdateUserSql[] =
    "UPDATE users SET username = COALESCE($2, username), "
    "email = COALESCE($3, email), password_hash = COALESCE($4, password_hash), "
    "updated_at = $5::timestamptz WHERE id = $1::uuid RETURNING " USER_COLUMNS;

constexpr char kDeleteUser[] = "auth_delete_user";
constexpr char kDeleteUserSql[] = "DELETE FROM users WHERE id = $1::uuid";

constexpr char kInsertFamily[] = "auth_insert_family";
constexpr char kInsertFamilySql[] =
    "INSERT INTO refresh_token_families (id, user_id, created_at) "
    "VALUES ($1::uuid, $2::uuid, $3::timestamptz)";

constexpr char kInsertToken[] = "auth_insert_token";
constexpr char kInsertTokenSql[] =
    "INSERT INTO refresh_tokens (token_hash, user_id, family_id, created_at, "
    "expires_at, session_id) "
    "VALUES (decode($1, 'hex'), $2::uuid, $3::uuid, $4::timestamptz, "
    "$5::timestamptz, NULLIF($6, $3)::uuid)";

// The token, its family's state, and how long ago it was rotated; locks the
// token row so that concurrent refreshes of one token take turns.
constexpr char kLockToken[] = "auth_lock_token";
constexpr char kLockTokenSql[] =
    "SELECT t.user_id::text, t.family_id::text, t.expires_at <= "
    "$2::timestamptz, "
    "       f.revoked_at IS NOT NULL, "
    "       (extract(epoch FROM $2::timestamptz - t.rotated_at) * "
    "1000000)::bigint, "
    "       COALESCE(t.session_id, t.family_id)::text "
    "FROM refresh_tokens t JOIN refresh_token_families f ON f.id = t.family_id "
    "WHERE t.token_hash = decode($1, 'hex') AND t.user_id = $3::uuid "
    "FOR UPDATE OF t";

constexpr char kMarkRotated[] = "auth_mark_rotated";
constexpr char kMarkRotatedSql[] =
    "UPDATE refresh_tokens SET rotated_at = $2::timestamptz "
    "WHERE token_hash = decode($1, 'hex') AND user_id = $3::uuid";

constexpr char kRevokeFamily[] = "auth_revoke_family";
constexpr char kRevokeFamilySql[] =
    "UPDATE refresh_token_families SET revoked_at = $2::timestamptz "
    "WHERE id = $1::uuid AND user_id = $3::uuid AND revoked_at IS NULL";

constexpr char kRevokeOtherFamilies[] = "auth_revoke_other_families";
constexpr char kRevokeOtherFamiliesSql[] =
    "UPDATE refresh_token_families SET revoked_at = $3::timestamptz "
    "WHERE user_id = $1::uuid AND revoked_at IS NULL AND id IS DISTINCT FROM "
    "  (SELECT family_id FROM refresh_tokens WHERE user_id = $1::uuid "
    "   AND COALESCE(session_id, family_id)::text = $2 LIMIT 1)";

// The twins of the session that stays (other sessions of its family), and
// every rotated token of the family: within its grace a rotated token
// would mint a twin, a session that outlived the password change.
constexpr char kDeleteTwinTokens[] = "auth_delete_twin_tokens";
constexpr char kDeleteTwinTokensSql[] =
    "DELETE FROM refresh_tokens WHERE user_id = $1::uuid "
    "AND (COALESCE(session_id, family_id)::text <> $2 "
    "OR rotated_at IS NOT NULL) AND family_id = "
    "  (SELECT family_id FROM refresh_tokens WHERE user_id = $1::uuid "
    "   AND COALESCE(session_id, family_id)::text = $2 LIMIT 1)";

// The max_failures-th most recent failure within the window, if any.
constexpr char kNthRecentFailure[] = "auth_nth_recent_failure";
constexpr char kNthRecentFailureSql[] =
    "SELECT (extract(epoch FROM failed_at) * 1000000)::bigint FROM "
    "login_failures "
    "WHERE user_id = $1::uuid AND failed_at > $2::timestamptz "
    "ORDER BY failed_at DESC OFFSET $3 LIMIT 1";

constexpr char kLockUser[] = "auth_lock_user";
constexpr char kLockUserSql[] =
    "SELECT 1 FROM users WHERE id = $1::uuid FOR NO KEY UPDATE";

constexpr char kInsertFailure[] = "auth_insert_failure";
constexpr char kInsertFailureSql[] =
    "INSERT INTO login_failures (user_id, failed_at) VALUES ($1::uuid, "
    "$2::timestamptz)";

constexpr char kPruneFailures[] = "auth_prune_failures";
constexpr char kPruneFailuresSql[] =
    "DELETE FROM login_failures WHERE user_id = $1::uuid AND failed_at <= "
    "$2::timestamptz";

constexpr char kClearFailures[] = "auth_clear_failures";
constexpr char kClearFailuresSql[] =
    "DELETE FROM login_failures WHERE user_id = $1::uuid";

UserRecord UserFromRow(const pqxx::row& row) {
  return UserRecord{
      .id = row[0].as<std::string>(),
      .username = row[1].as<std::string>(),
      .email = row[2].as<std::string>(),
      .password_hash = row[3].as<std::string>(),
      .created_at = FromPgMicros(row[4].as<int64_t>()),
      .updated_at = FromPgMicros(row[5].as<int64_t>()),
  };
}

// ALREADY_EXISTS naming the taken fields, or OK when none is taken.
absl::Status CheckConflicts(pqxx::work& tx, const std::string& own_id,
                            const std::optional<std::string>& username,
                            const std::optional<std::string>& email) {
  if (!username && !email) return absl::OkStatus();
  pqxx::row row = tx.exec_prepared1(kConflicts, own_id, username, email);
  std::vector<FieldViolation> taken;
  if (row[0].as<bool>()) taken.push_back({"username", "is already taken"});
  if (row[1].as<bool>()) taken.push_back({"email", "is already registered"});
  if (taken.empty()) return absl::OkStatus();
  return ErrorWithViolations(absl::StatusCode::kAlreadyExists,
                             "account already exists", taken);
}

absl::Status NotFound() { return absl::NotFoundError("user not found"); }

}  // namespace

std::vector<PreparedStatement> AuthStorage::Statements() {
  return {
      {kInsertUser, kInsertUserSql},
      {kConflicts, kConflictsSql},
      {kUserByLogin, kUserByLoginSql},
      {kUserById, kUserByIdSql},
      {kUpdateUser, kUpdateUserSql},
      {kDeleteUser, kDeleteUserSql},
      {kInsertFamily, kInsertFamilySql},
      {kInsertToken, kInsertTokenSql},
      {kLockToken, kLockTokenSql},
      {kMarkRotated, kMarkRotatedSql},
      {kRevokeFamily, kRevokeFamilySql},
      {kRevokeOtherFamilies, kRevokeOtherFamiliesSql},
      {kDeleteTwinTokens, kDeleteTwinTokensSql},
      {kNthRecentFailure, kNthRecentFailureSql},
      {kLockUser, kLockUserSql},
      {kInsertFailure, kInsertFailureSql},
      {kPruneFailures, kPruneFailuresSql},
      {kClearFailures, kClearFailuresSql},
  };
}

absl::StatusOr<UserRecord> AuthStorage::CreateUser(const UserRecord& user) {
  return pool_->Transact<UserRecord>(
      "", [&](pqxx::work& tx) -> absl::StatusOr<UserRecord> {
        RETURN_IF_ERROR(CheckConflicts(tx, user.id, user.username, user.email));
        return UserFromRow(
            tx.exec_prepared1(kInsertUser, user.id, user.username, user.email,
                              user.password_hash, PgTime(user.created_at)));
      });
}

absl::StatusOr<UserRecord> AuthStorage::FindUserByLogin(
    absl::string_view login) {
  return pool_->Transact<UserRecord>(
      "", [&](pqxx::work& tx) -> absl::StatusOr<UserRecord> {
        pqxx::result rows = tx.exec_prepared(kUserByLogin, std::string(login));
        if (rows.empty()) return NotFound();
        return UserFromRow(rows[0]);
      });
}

absl::StatusOr<UserRecord> AuthStorage::FindUserById(absl::string_view id) {
  return pool_->Transact<UserRecord>(
      "", [&](pqxx::work& tx) -> absl::StatusOr<UserRecord> {
        pqxx::result rows = tx.exec_prepared(kUserById, std::string(id));
        if (rows.empty()) return NotFound();
        return UserFromRow(rows[0]);
      });
}

absl::StatusOr<UserRecord> AuthStorage::UpdateUser(absl::string_view id,
                                                   const AccountChange& change,
                                                   absl::Time now) {
  const std::string user_id(id);
  return pool_->Transact<UserRecord>(
      "", [&](pqxx::work& tx) -> absl::StatusOr<UserRecord> {
        RETURN_IF_ERROR(
            CheckConflicts(tx, user_id, change.username, change.email));
        pqxx::result rows =
            tx.exec_prepared(kUpdateUser, user_id, change.username,
                             change.email, change.password_hash, PgTime(now));
        if (rows.empty()) return NotFound();
        return UserFromRow(rows[0]);
      });
}

absl::Status AuthStorage::DeleteUser(absl::string_view id) {
  return pool_->Transact("", [&](pqxx::work& tx) -> absl::Status {
    if (tx.exec_prepared(kDeleteUser, std::string(id)).affected_rows() == 0) {
      return NotFound();
    }
    return absl::OkStatus();
  });
}

absl::Status AuthStorage::StartFamily(absl::string_view user_id,
                                      absl::string_view family_id,
                                      absl::string_view token_hash,
                                      absl::Time now, absl::Time expires_at) {
  return pool_->Transact("", [&](pqxx::work& tx) {
    tx.exec_prepared0(kInsertFamily, std::string(family_id),
                      std::string(user_id), PgTime(now));
    tx.exec_prepared0(kInsertToken, std::string(token_hash),
                      std::string(user_id), std::string(family_id), PgTime(now),
                      PgTime(expires_at), std::string(family_id));
    return absl::OkStatus();
  });
}

absl::StatusOr<Rotation> AuthStorage::Rotate(
    absl::string_view user_id, absl::string_view old_hash,
    absl::string_view new_hash, absl::string_view new_session_id,
    absl::Time now, absl::Time expires_at, absl::Duration grace) {
  const std::string old_token(old_hash), new_token(new_hash), at(PgTime(now));
  return pool_->Transact<Rotation>(
      "", [&](pqxx::work& tx) -> absl::StatusOr<Rotation> {
        pqxx::result rows =
            tx.exec_prepared(kLockToken, old_token, at, std::string(user_id));
        if (rows.empty()) return Rotation{RotationOutcome::kInvalid};
        const pqxx::row row = rows[0];
        Rotation rotation{RotationOutcome::kRotated, row[0].as<std::string>(),
                          row[1].as<std::string>(), row[5].as<std::string>()};
        const bool expired = row[2].as<bool>();
        const bool revoked = row[3].as<bool>();
        if (expired || revoked) {
          rotation.outcome = RotationOutcome::kInvalid;
          return rotation;
        }
        if (!row[4].is_null()) {
          const absl::Duration since_rotation =
              absl::Microseconds(row[4].as<int64_t>());
          if (since_rotation > grace) {
            tx.exec_prepared0(kRevokeFamily, rotation.family_id, at,
                              rotation.user_id);
            rotation.outcome = RotationOutcome::kReuse;
            return rotation;
          }
          rotation.outcome = RotationOutcome::kGraceReplay;
          rotation.session_id = std::string(new_session_id);
        } else {
          tx.exec_prepared0(kMarkRotated, old_token, at, std::string(user_id));
        }
        tx.exec_prepared0(kInsertToken, new_token, rotation.user_id,
                          rotation.family_id, at, PgTime(expires_at),
                          rotation.session_id);
        return rotation;
      });
}

absl::Status AuthStorage::RevokeFamilyOf(absl::string_view user_id,
                                         absl::string_view token_hash,
                                         absl::Time now) {
  const std::string at(PgTime(now)), user(user_id);
  return pool_->Transact("", [&](pqxx::work& tx) -> absl::Status {
    pqxx::result rows =
        tx.exec_prepared(kLockToken, std::string(token_hash), at, user);
    if (rows.empty()) return absl::NotFoundError("unknown refresh token");
    tx.exec_prepared0(kRevokeFamily, rows[0][1].as<std::string>(), at, user);
    return absl::OkStatus();
  });
}

absl::Status AuthStorage::EndOtherSessions(absl::string_view user_id,
                                           absl::string_view keep_session_id,
                                           absl::Time now) {
  const std::string user(user_id), keep(keep_session_id);
  return pool_->Transact("", [&](pqxx::work& tx) {
    tx.exec_prepared0(kRevokeOtherFamilies, user, keep, PgTime(now));
    tx.exec_prepared0(kDeleteTwinTokens, user, keep);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<absl::Time>> AuthStorage::ReserveLoginAttempt(
    absl::string_view user_id, int max_failures, absl::Duration window,
    absl::Time now) {
  const std::string user(user_id), since(PgTime(now - window));
  return pool_->Transact<std::optional<absl::Time>>(
      "", [&](pqxx::work& tx) -> absl::StatusOr<std::optional<absl::Time>> {
        // Serialises the account's attempts: count and take in one step.
        if (tx.exec_prepared(kLockUser, user).empty()) return NotFound();
        pqxx::result rows =
            tx.exec_prepared(kNthRecentFailure, user, since, max_failures - 1);
        if (!rows.empty()) {
          return FromPgMicros(rows[0][0].as<int64_t>()) + window;
        }
        tx.exec_prepared0(kPruneFailures, user, since);
        tx.exec_prepared0(kInsertFailure, user, PgTime(now));
        return std::nullopt;
      });
}

absl::Status AuthStorage::ClearLoginFailures(absl::string_view user_id) {
  return pool_->Transact("", [&](pqxx::work& tx) {
    tx.exec_prepared0(kClearFailures, std::string(user_id));
    return absl::OkStatus();
  });
}

}  // namespace chat::auth
