#include "common/idempotency.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "openssl/evp.h"

namespace chat {
namespace {

constexpr size_t kMaxKeyLength = 255;

constexpr char kPrune[] = "idempotency_prune";
constexpr char kPruneSql[] =
    "DELETE FROM idempotency_keys WHERE user_id = $1::uuid "
    "AND created_at <= $2::timestamptz";
constexpr char kClaim[] = "idempotency_claim";
constexpr char kClaimSql[] =
    "INSERT INTO idempotency_keys (user_id, key, request_hash, resource_id, "
    "created_at) "
    "VALUES ($1::uuid, $2, $3, $4::uuid, $5::timestamptz) "
    "ON CONFLICT (user_id, key) DO NOTHING RETURNING 1";
constexpr char kLookup[] = "idempotency_lookup";
constexpr char kLookupSql[] =
    "SELECT request_hash, resource_id::text FROM idempotency_keys "
    "WHERE user_id = $1::uuid AND key = $2";

absl::Status ValidateIdempotencyKey(absl::string_view key) {
  bool printable = !key.empty() && key.size() <= kMaxKeyLength;
  for (char c : key) printable &= c >= 0x20 && c < 0x7F;
  if (printable) return absl::OkStatus();
  FieldViolations violations;
  violations.Add("idempotency_key",
                 "must be 1 to 255 printable ASCII characters");
  return violations.ToStatus();
}

}  // namespace

std::vector<PreparedStatement> IdempotencyStatements() {
  return {{kPrune, kPruneSql}, {kClaim, kClaimSql}, {kLookup, kLookupSql}};
}

std::string RequestHash(absl::string_view method,
                        const std::vector<std::string>& fields) {
  std::string canonical = absl::StrCat(method.size(), ":", method);
  for (const std::string& field : fields) {
    absl::StrAppend(&canonical, field.size(), ":", field);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(canonical.data(), canonical.size(), digest, &length, EVP_sha256(),
             nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(digest), length));
}

absl::StatusOr<std::optional<IdempotencyKey>> IdempotencyKeyFor(
    absl::string_view key, absl::string_view method,
    const std::vector<std::string>& fields) {
  if (key.empty()) return std::nullopt;
  if (absl::Status s = ValidateIdempotencyKey(key); !s.ok()) return s;
  return IdempotencyKey{std::string(key), RequestHash(method, fields)};
}

absl::StatusOr<IdempotencyClaim> ClaimIdempotencyKey(
    pqxx::work& tx, const std::string& user_id, const IdempotencyKey& key,
    const std::string& new_resource_id, absl::Time now) {
  tx.exec_prepared0(kPrune, user_id, PgTime(now - kIdempotencyWindow));
  if (!tx.exec_prepared(kClaim, user_id, key.key, key.request_hash,
                        new_resource_id, PgTime(now))
           .empty()) {
    return IdempotencyClaim{.replay = false, .resource_id = new_resource_id};
  }
  pqxx::row first = tx.exec_prepared1(kLookup, user_id, key.key);
  if (first[0].as<std::string>() != key.request_hash) {
    return ErrorWithViolations(
        absl::StatusCode::kAlreadyExists,
        "this Idempotency-Key was already used for another request",
        {{"idempotency_key", "was already used for another request"}});
  }
  return IdempotencyClaim{.replay = true,
                          .resource_id = first[1].as<std::string>()};
}

}  // namespace chat
