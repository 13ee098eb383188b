#ifndef CHAT_SERVICES_MESSAGE_SHARE_STORAGE_H_
#define CHAT_SERVICES_MESSAGE_SHARE_STORAGE_H_

// The share links' SQL (deploy/migrations/0013_shares.sql). The owner's
// statements filter by user_id and run with app.user_id set (row-level
// security); the read by token runs without a user, through the
// shared_conversation() function, which alone can read a snapshot then.
//
// A snapshot is copied under the conversation row's lock, which every
// change to the conversation's messages takes first: it is the active
// branch of one moment, and the per-conversation cap holds under
// concurrency.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/db.h"
#include "services/message/shares.h"

namespace chat::message {

// ShareStore in PostgreSQL.
class ShareStorage final : public ShareStore {
 public:
  explicit ShareStorage(DbPool* pool) : pool_(pool) {}

  static std::vector<PreparedStatement> Statements();

  absl::StatusOr<StoredShare> CreateShare(const std::string& user_id,
                                          const ShareRecord& share,
                                          const std::string& token_hash,
                                          const ShareLimits& limits) override;
  absl::StatusOr<std::vector<ShareRecord>> ListShares(
      const std::string& user_id, const std::string& conversation_id) override;
  absl::Status DeleteShare(const std::string& user_id,
                           const std::string& conversation_id,
                           const std::string& share_id) override;
  absl::StatusOr<SharedSnapshot> SharedByToken(
      const std::string& token_hash) override;

 private:
  DbPool* pool_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_SHARE_STORAGE_H_
