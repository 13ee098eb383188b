#include "common/idempotency_storage.h"

#include "common/errors.h"

namespace chat {
namespace {

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

}  // namespace

std::vector<PreparedStatement> IdempotencyStatements() {
  return {{kPrune, kPruneSql}, {kClaim, kClaimSql}, {kLookup, kLookupSql}};
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
