#include "services/auth/in_memory_account_store.h"

#include <algorithm>
#include <functional>

#include "absl/strings/ascii.h"
#include "common/clock.h"
#include "common/errors.h"

namespace chat::auth {
namespace {

absl::Status NotFound() { return absl::NotFoundError("user not found"); }

// A uuid column matches ids whatever their case.
std::string Id(absl::string_view id) { return absl::AsciiStrToLower(id); }

// What PostgreSQL receives of a text parameter: libpq sends text parameters
// as C strings, so anything after a NUL is silently dropped (checked with
// libpqxx 7 and PostgreSQL 15).
std::string PgText(absl::string_view text) {
  return std::string(text.substr(0, text.find('\0')));
}

// lower() of a username or an email, both ASCII by the account rules.
std::string Folded(absl::string_view text) {
  return absl::AsciiStrToLower(PgText(text));
}

}  // namespace

absl::Status InMemoryAccountStore::CheckConflicts(
    const std::string& own_id, const std::optional<std::string>& username,
    const std::optional<std::string>& email) const {
  if (!username && !email) return absl::OkStatus();
  bool username_taken = false, email_taken = false;
  for (const auto& [id, user] : users_) {
    if (id == own_id) continue;
    username_taken |= username && Folded(user.username) == Folded(*username);
    email_taken |= email && Folded(user.email) == Folded(*email);
  }
  std::vector<FieldViolation> taken;
  if (username_taken) taken.push_back({"username", "is already taken"});
  if (email_taken) taken.push_back({"email", "is already registered"});
  if (taken.empty()) return absl::OkStatus();
  return ErrorWithViolations(absl::StatusCode::kAlreadyExists,
                             "account already exists", taken);
}

absl::StatusOr<UserRecord> InMemoryAccountStore::CreateUser(
    const UserRecord& user) {
  std::lock_guard<std::mutex> lock(mutex_);
  UserRecord stored = user;
  stored.id = Id(user.id);
  stored.username = PgText(user.username);
  stored.email = PgText(user.email);
  stored.password_hash = PgText(user.password_hash);
  if (absl::Status s = CheckConflicts(stored.id, user.username, user.email);
      !s.ok()) {
    return s;
  }
  stored.created_at = ToMicroseconds(user.created_at);
  stored.updated_at = stored.created_at;
  auto [it, inserted] = users_.try_emplace(stored.id, stored);
  if (!inserted) return absl::AlreadyExistsError("already exists");
  return it->second;
}

absl::StatusOr<UserRecord> InMemoryAccountStore::FindUserByLogin(
    absl::string_view login) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string folded = Folded(login);
  for (const auto& [id, user] : users_) {
    if (Folded(user.username) == folded || Folded(user.email) == folded) {
      return user;
    }
  }
  return NotFound();
}

absl::StatusOr<UserRecord> InMemoryAccountStore::FindUserById(
    absl::string_view id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = users_.find(Id(id));
  if (it == users_.end()) return NotFound();
  return it->second;
}

absl::StatusOr<UserRecord> InMemoryAccountStore::UpdateUser(
    absl::string_view id, const AccountChange& change, absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string user_id = Id(id);
  // As in SQL: the conflicts are checked before the row is looked for.
  if (absl::Status s = CheckConflicts(user_id, change.username, change.email);
      !s.ok()) {
    return s;
  }
  auto it = users_.find(user_id);
  if (it == users_.end()) return NotFound();
  UserRecord& user = it->second;
  if (change.username) user.username = PgText(*change.username);
  if (change.email) user.email = PgText(*change.email);
  if (change.password_hash) user.password_hash = PgText(*change.password_hash);
  user.updated_at = ToMicroseconds(now);
  return user;
}

absl::Status InMemoryAccountStore::DeleteUser(absl::string_view id) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string user_id = Id(id);
  if (users_.erase(user_id) == 0) return NotFound();
  // ON DELETE CASCADE.
  std::erase_if(families_, [&](const auto& entry) {
    return entry.second.user_id == user_id;
  });
  std::erase_if(tokens_, [&](const auto& entry) {
    return entry.second.user_id == user_id;
  });
  failures_.erase(user_id);
  return absl::OkStatus();
}

std::string InMemoryAccountStore::SessionOf(const Token& token) {
  return token.session_id.value_or(token.family_id);
}

void InMemoryAccountStore::InsertToken(const std::string& hash,
                                       const std::string& user_id,
                                       const std::string& family_id,
                                       absl::Time now, absl::Time expires_at,
                                       const std::string& session_id) {
  Token token{.user_id = user_id,
              .family_id = family_id,
              .created_at = ToMicroseconds(now),
              .expires_at = ToMicroseconds(expires_at)};
  // NULLIF(session_id, family_id): the family's own session is NULL.
  if (session_id != family_id) token.session_id = session_id;
  tokens_.emplace(hash, std::move(token));
}

absl::Status InMemoryAccountStore::StartFamily(absl::string_view user_id,
                                               absl::string_view family_id,
                                               absl::string_view token_hash,
                                               absl::Time now,
                                               absl::Time expires_at) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string user = Id(user_id), family = Id(family_id);
  if (!users_.contains(user)) {  // REFERENCES users (id)
    return absl::FailedPreconditionError("a referenced record does not exist");
  }
  if (families_.contains(family) || tokens_.contains(std::string(token_hash))) {
    return absl::AlreadyExistsError("already exists");
  }
  families_.emplace(family,
                    Family{.user_id = user, .created_at = ToMicroseconds(now)});
  InsertToken(std::string(token_hash), user, family, now, expires_at, family);
  return absl::OkStatus();
}

absl::StatusOr<Rotation> InMemoryAccountStore::Rotate(
    absl::string_view user_id, absl::string_view old_hash,
    absl::string_view new_hash, absl::string_view new_session_id,
    absl::Time now, absl::Time expires_at, absl::Duration grace) {
  std::lock_guard<std::mutex> lock(mutex_);
  const absl::Time at = ToMicroseconds(now);
  auto token = tokens_.find(std::string(old_hash));
  if (token == tokens_.end() || token->second.user_id != Id(user_id)) {
    return Rotation{RotationOutcome::kInvalid};
  }
  auto family = families_.find(token->second.family_id);
  if (family == families_.end()) return Rotation{RotationOutcome::kInvalid};
  Rotation rotation{RotationOutcome::kRotated, token->second.user_id,
                    token->second.family_id, SessionOf(token->second)};
  if (token->second.expires_at <= at || family->second.revoked_at) {
    rotation.outcome = RotationOutcome::kInvalid;
    return rotation;
  }
  if (token->second.rotated_at) {
    if (at - *token->second.rotated_at > grace) {
      family->second.revoked_at = at;
      rotation.outcome = RotationOutcome::kReuse;
      return rotation;
    }
    rotation.outcome = RotationOutcome::kGraceReplay;
    rotation.session_id = std::string(new_session_id);
  }
  // A failed insert rolls the whole rotation back.
  if (tokens_.contains(std::string(new_hash))) {
    return absl::AlreadyExistsError("already exists");
  }
  if (rotation.outcome == RotationOutcome::kRotated) {
    token->second.rotated_at = at;
  }
  InsertToken(std::string(new_hash), rotation.user_id, rotation.family_id, at,
              expires_at, rotation.session_id);
  return rotation;
}

absl::Status InMemoryAccountStore::RevokeFamilyOf(absl::string_view user_id,
                                                  absl::string_view token_hash,
                                                  absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto token = tokens_.find(std::string(token_hash));
  if (token == tokens_.end() || token->second.user_id != Id(user_id)) {
    return absl::NotFoundError("unknown refresh token");
  }
  auto family = families_.find(token->second.family_id);
  if (family == families_.end()) {
    return absl::NotFoundError("unknown refresh token");
  }
  if (!family->second.revoked_at)
    family->second.revoked_at = ToMicroseconds(now);
  return absl::OkStatus();
}

std::optional<std::string> InMemoryAccountStore::FamilyOfSession(
    const std::string& user_id, const std::string& session) const {
  for (const auto& [hash, token] : tokens_) {
    if (token.user_id == user_id && SessionOf(token) == session) {
      return token.family_id;
    }
  }
  return std::nullopt;
}

absl::Status InMemoryAccountStore::EndOtherSessions(
    absl::string_view user_id, absl::string_view keep_session_id,
    absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string user = Id(user_id), keep(keep_session_id);
  // As the SQL does: with no token of that session, every family is revoked
  // (IS DISTINCT FROM NULL) and no token is dropped (= NULL).
  const std::optional<std::string> kept_family = FamilyOfSession(user, keep);
  for (auto& [id, family] : families_) {
    if (family.user_id == user && !family.revoked_at && id != kept_family) {
      family.revoked_at = ToMicroseconds(now);
    }
  }
  if (kept_family) {
    std::erase_if(tokens_, [&](const auto& entry) {
      const Token& token = entry.second;
      return token.user_id == user && token.family_id == *kept_family &&
             (SessionOf(token) != keep || token.rotated_at.has_value());
    });
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<absl::Time>>
InMemoryAccountStore::ReserveLoginAttempt(absl::string_view user_id,
                                          int max_failures,
                                          absl::Duration window,
                                          absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string user = Id(user_id);
  if (!users_.contains(user)) return NotFound();
  if (max_failures < 1) {
    return absl::InvalidArgumentError("max_failures must be positive");
  }
  const absl::Time since = ToMicroseconds(now - window);
  std::vector<absl::Time> recent;
  auto [begin, end] = failures_.equal_range(user);
  for (auto it = begin; it != end; ++it) {
    if (it->second > since) recent.push_back(it->second);
  }
  if (recent.size() >= static_cast<size_t>(max_failures)) {
    // The max_failures-th most recent: when it leaves the window, one
    // attempt is free again.
    std::sort(recent.begin(), recent.end(), std::greater<>());
    return recent[max_failures - 1] + window;
  }
  for (auto it = begin; it != end;) {
    it = it->second <= since ? failures_.erase(it) : std::next(it);
  }
  failures_.emplace(user, ToMicroseconds(now));
  return std::nullopt;
}

absl::Status InMemoryAccountStore::ClearLoginFailures(
    absl::string_view user_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  failures_.erase(Id(user_id));
  return absl::OkStatus();
}

size_t InMemoryAccountStore::TokenCount(absl::string_view user_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string user = Id(user_id);
  return std::count_if(tokens_.begin(), tokens_.end(), [&](const auto& entry) {
    return entry.second.user_id == user;
  });
}

size_t InMemoryAccountStore::FamilyCount(absl::string_view user_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string user = Id(user_id);
  return std::count_if(
      families_.begin(), families_.end(),
      [&](const auto& entry) { return entry.second.user_id == user; });
}

size_t InMemoryAccountStore::FailureCount(absl::string_view user_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failures_.count(Id(user_id));
}

}  // namespace chat::auth
