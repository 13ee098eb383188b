#include "services/auth/accounts.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_replace.h"
#include "common/errors.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "openssl/evp.h"
#include "openssl/rand.h"
#include "services/auth/validation.h"

namespace chat::auth {
namespace {

constexpr char kBadCredentials[] = "invalid login or password";
constexpr char kBadRefreshToken[] =
    "refresh token is invalid, expired or revoked";

absl::Status Required(absl::string_view field) {
  FieldViolations violations;
  violations.Add(field, "is required");
  return violations.ToStatus();
}

// An account deleted after its token was issued no longer authenticates.
// An account deleted while a call uses it: NOT_FOUND from a lookup or an
// update, FAILED_PRECONDITION from a row that references it.
absl::Status GoneToUnauthenticated(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kNotFound ||
      status.code() == absl::StatusCode::kFailedPrecondition) {
    return absl::UnauthenticatedError("the account no longer exists");
  }
  return status;
}

}  // namespace

namespace {

constexpr size_t kUserIdBytes = 16;
constexpr size_t kSecretBytes = 32;

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(digest), length));
}

}  // namespace

std::string NewRefreshToken(absl::string_view user_id) {
  std::string bytes =
      absl::HexStringToBytes(absl::StrReplaceAll(user_id, {{"-", ""}}));
  unsigned char secret[kSecretBytes];
  RAND_bytes(secret, sizeof(secret));
  bytes.append(reinterpret_cast<char*>(secret), sizeof(secret));
  return absl::WebSafeBase64Escape(bytes);
}

std::optional<RefreshTokenRef> ParseRefreshToken(absl::string_view token) {
  std::optional<std::string> bytes = DecodeBase64UrlStrict(token);
  if (!bytes || bytes->size() != kUserIdBytes + kSecretBytes) {
    return std::nullopt;
  }
  std::string hex = absl::BytesToHexString(bytes->substr(0, kUserIdBytes));
  for (size_t dash : {8, 13, 18, 23}) hex.insert(dash, "-");
  return RefreshTokenRef{std::move(hex), Sha256Hex(token)};
}

Accounts::Accounts(AccountStore* storage, const JwtSigner* signer,
                   const PasswordHasher* hasher, const Clock* clock,
                   AccountsOptions options)
    : storage_(storage),
      signer_(signer),
      hasher_(hasher),
      clock_(clock),
      options_(std::move(options)),
      dummy_hash_(hasher->Hash(NewUuidV7()).value_or("")) {}

absl::StatusOr<Session> Accounts::Register(const Registration& registration) {
  FieldViolations violations;
  ValidateUsername("username", registration.username, violations);
  ValidateEmail("email", registration.email, violations);
  ValidatePassword("password", registration.password, violations);
  RETURN_IF_ERROR(violations.ToStatus());

  ASSIGN_OR_RETURN(std::string hash, hasher_->Hash(registration.password));
  const absl::Time now = clock_->Now();
  ASSIGN_OR_RETURN(UserRecord user, storage_->CreateUser(UserRecord{
                                        .id = NewUuidV7(now),
                                        .username = registration.username,
                                        .email = registration.email,
                                        .password_hash = std::move(hash),
                                        .created_at = now,
                                        .updated_at = now}));
  ASSIGN_OR_RETURN(IssuedTokens tokens, StartSession(user));
  return Session{std::move(user), std::move(tokens)};
}

absl::StatusOr<Session> Accounts::Login(absl::string_view login,
                                        absl::string_view password) {
  FieldViolations violations;
  if (login.empty()) violations.Add("login", "is required");
  if (password.empty()) violations.Add("password", "is required");
  RETURN_IF_ERROR(violations.ToStatus());

  // No username or email holds a NUL, and libpq would cut the text there:
  // "carl\0x" must not find carl.
  absl::StatusOr<UserRecord> user = login.find('\0') == absl::string_view::npos
                                        ? storage_->FindUserByLogin(login)
                                        : absl::NotFoundError("no such login");
  if (user.status().code() == absl::StatusCode::kNotFound) {
    // Spend the same time as for a wrong password, so that response times
    // do not tell which logins exist.
    hasher_->Verify(password, dummy_hash_);
    return absl::UnauthenticatedError(kBadCredentials);
  }
  if (!user.ok()) return user.status();
  RETURN_IF_ERROR(CheckPassword(*user, password, "password"));

  if (hasher_->NeedsRehash(user->password_hash)) {
    if (absl::StatusOr<std::string> rehashed = hasher_->Hash(password);
        rehashed.ok()) {
      if (absl::StatusOr<UserRecord> updated = storage_->UpdateUser(
              user->id, AccountChange{.password_hash = *rehashed},
              clock_->Now());
          updated.ok()) {
        user = *std::move(updated);
      }
    }
  }
  absl::StatusOr<IssuedTokens> tokens = StartSession(*user);
  if (!tokens.ok()) return GoneToUnauthenticated(tokens.status());
  return Session{*std::move(user), *std::move(tokens)};
}

absl::Status Accounts::CheckPassword(const UserRecord& user,
                                     absl::string_view password,
                                     absl::string_view field) {
  const absl::Time now = clock_->Now();
  absl::StatusOr<std::optional<absl::Time>> locked_until =
      storage_->ReserveLoginAttempt(user.id, options_.max_failed_logins,
                                    options_.failed_login_window, now);
  if (absl::IsNotFound(locked_until.status())) {  // deleted meanwhile
    return absl::UnauthenticatedError(kBadCredentials);
  }
  if (!locked_until.ok()) return locked_until.status();
  if (*locked_until) {
    return ResourceExhaustedRetryAfter(
        "too many failed attempts for this account; retry later",
        std::max(**locked_until - now, absl::Seconds(1)));
  }
  // The attempt already counts as a failure; only a match clears it.
  if (!hasher_->Verify(password, user.password_hash)) {
    if (field == "password") return absl::UnauthenticatedError(kBadCredentials);
    return ErrorWithViolations(absl::StatusCode::kPermissionDenied,
                               "current password is incorrect",
                               {{std::string(field), "is incorrect"}});
  }
  return storage_->ClearLoginFailures(user.id);
}

absl::StatusOr<IssuedTokens> Accounts::StartSession(const UserRecord& user) {
  const absl::Time now = clock_->Now();
  const std::string family_id = NewUuidV7(now);
  std::string refresh_token = NewRefreshToken(user.id);
  RETURN_IF_ERROR(storage_->StartFamily(user.id, family_id,
                                        ParseRefreshToken(refresh_token)->hash,
                                        now, now + options_.refresh_token_ttl));
  return Issue(user.id, family_id, std::move(refresh_token));
}

absl::StatusOr<IssuedTokens> Accounts::Issue(absl::string_view user_id,
                                             absl::string_view session_id,
                                             std::string refresh_token) {
  const absl::Time now = clock_->Now();
  ASSIGN_OR_RETURN(std::string access_token,
                   signer_->Sign(AccessClaims{
                       .issuer = options_.issuer,
                       .audience = options_.audience,
                       .subject = std::string(user_id),
                       .jwt_id = NewUuidV7(now),
                       .session_id = std::string(session_id),
                       .issued_at = now,
                       .not_before = now,
                       .expires_at = now + options_.access_token_ttl,
                   }));
  return IssuedTokens{std::move(access_token), std::move(refresh_token),
                      options_.access_token_ttl};
}

absl::StatusOr<IssuedTokens> Accounts::Refresh(
    absl::string_view refresh_token) {
  if (refresh_token.empty()) return Required("refresh_token");
  const std::optional<RefreshTokenRef> presented =
      ParseRefreshToken(refresh_token);
  if (!presented) return absl::UnauthenticatedError(kBadRefreshToken);
  const absl::Time now = clock_->Now();
  std::string next = NewRefreshToken(presented->user_id);
  ASSIGN_OR_RETURN(
      Rotation rotation,
      storage_->Rotate(presented->user_id, presented->hash,
                       ParseRefreshToken(next)->hash, NewUuidV7(now), now,
                       now + options_.refresh_token_ttl,
                       options_.refresh_reuse_grace));
  switch (rotation.outcome) {
    case RotationOutcome::kRotated:
    case RotationOutcome::kGraceReplay:
      return Issue(rotation.user_id, rotation.session_id, std::move(next));
    case RotationOutcome::kReuse:
      log::Warn(
          "refresh token reuse; session family revoked",
          {{"user_id", rotation.user_id}, {"family_id", rotation.family_id}});
      return absl::UnauthenticatedError(
          "refresh token was already used; the session has been revoked");
    case RotationOutcome::kInvalid:
      break;
  }
  return absl::UnauthenticatedError(kBadRefreshToken);
}

absl::Status Accounts::Logout(absl::string_view refresh_token) {
  if (refresh_token.empty()) return Required("refresh_token");
  const std::optional<RefreshTokenRef> presented =
      ParseRefreshToken(refresh_token);
  if (!presented) return absl::UnauthenticatedError(kBadRefreshToken);
  absl::Status status = storage_->RevokeFamilyOf(
      presented->user_id, presented->hash, clock_->Now());
  if (status.code() == absl::StatusCode::kNotFound) {
    return absl::UnauthenticatedError(kBadRefreshToken);
  }
  return status;
}

absl::StatusOr<UserRecord> Accounts::GetProfile(const AccessClaims& caller) {
  absl::StatusOr<UserRecord> user = storage_->FindUserById(caller.subject);
  if (!user.ok()) return GoneToUnauthenticated(user.status());
  return user;
}

absl::StatusOr<UserRecord> Accounts::UpdateProfile(
    const AccessClaims& caller, const ProfileUpdate& update) {
  FieldViolations violations;
  if (update.username)
    ValidateUsername("username", *update.username, violations);
  if (update.email) ValidateEmail("email", *update.email, violations);
  if (update.new_password) {
    ValidatePassword("new_password", *update.new_password, violations);
  }
  if (update.current_password.empty())
    violations.Add("current_password", "is required");
  RETURN_IF_ERROR(violations.ToStatus());

  absl::StatusOr<UserRecord> user = storage_->FindUserById(caller.subject);
  if (!user.ok()) return GoneToUnauthenticated(user.status());
  RETURN_IF_ERROR(
      CheckPassword(*user, update.current_password, "current_password"));

  AccountChange change{.username = update.username, .email = update.email};
  if (update.new_password) {
    ASSIGN_OR_RETURN(change.password_hash, hasher_->Hash(*update.new_password));
  }
  if (!change.username && !change.email && !change.password_hash) return user;
  const absl::Time now = clock_->Now();
  absl::StatusOr<UserRecord> updated =
      storage_->UpdateUser(user->id, change, now);
  if (!updated.ok()) return GoneToUnauthenticated(updated.status());
  if (update.new_password) {
    // Other sessions end; the one that changed the password goes on.
    RETURN_IF_ERROR(
        storage_->EndOtherSessions(user->id, caller.session_id, now));
  }
  return *std::move(updated);
}

absl::Status Accounts::DeleteAccount(const AccessClaims& caller,
                                     absl::string_view current_password) {
  if (current_password.empty()) return Required("current_password");
  absl::StatusOr<UserRecord> user = storage_->FindUserById(caller.subject);
  if (!user.ok()) return GoneToUnauthenticated(user.status());
  RETURN_IF_ERROR(CheckPassword(*user, current_password, "current_password"));
  return GoneToUnauthenticated(storage_->DeleteUser(user->id));
}

}  // namespace chat::auth
