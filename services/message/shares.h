#ifndef CHAT_SERVICES_MESSAGE_SHARES_H_
#define CHAT_SERVICES_MESSAGE_SHARES_H_

// Share links (docs/api.md "Share links"): a read-only snapshot of a
// conversation's active branch, reachable without an account through a
// token of 256 random bits of which only the SHA-256 is stored. The owner
// creates, lists and revokes the shares of their own conversations (another
// user's conversation or share is NOT_FOUND, like a missing one); anyone
// with the token reads the snapshot, which names nothing of the owner.
//
//   Shares shares(&store, &clock, {.public_base_url = "https://chat.example"});
//   ASSIGN_OR_RETURN(CreatedShare made, shares.Create(user, conversation_id));
//   // made.token goes to the owner once; later only its hash is known.
//   ASSIGN_OR_RETURN(SharedSnapshot view, shares.View(made.token));

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "services/message/message_values.h"

namespace chat::message {

// What a snapshot may hold. A message is at most 100,000 characters (up to
// 400,000 bytes of UTF-8) and the gateway accepts at most 16 MiB from a
// service, so a snapshot keeps to 8 MiB of content and 10,000 messages: its
// answer stays far below the gateway's limit. A larger active branch cannot
// be shared (FAILED_PRECONDITION): nothing is cut silently.
inline constexpr int kMaxSharedMessages = 10000;
inline constexpr int64_t kMaxSharedContentBytes = int64_t{8} << 20;
// Live shares per conversation; ListShares answers them all on one page.
inline constexpr int kMaxSharesPerConversation = 20;

// A share as its owner sees it (never its token, which is not stored).
struct ShareRecord {
  std::string id;
  std::string conversation_id;
  int message_count = 0;
  absl::Time created_at;
};

// One message of a snapshot: what the shared view shows, nothing more.
struct SharedMessage {
  Role role = Role::kUser;
  std::string content;
  std::string model;
  absl::Time created_at;
};

// A share as anyone with its token sees it.
struct SharedSnapshot {
  std::string title;
  std::vector<SharedMessage> messages;  // root first
  absl::Time created_at;                // when the share was made
};

// Why a snapshot was not made.
enum class ShareRefusal {
  kNone,
  kTooManyShares,  // the conversation has kMaxSharesPerConversation already
  kEmpty,          // the active branch has nothing to show
  kTooLarge,       // the active branch exceeds the snapshot limits
};

// What a snapshot may hold; the store checks it in the transaction that
// copies the messages.
struct ShareLimits {
  int max_shares = kMaxSharesPerConversation;
  int max_messages = kMaxSharedMessages;
  int64_t max_content_bytes = kMaxSharedContentBytes;
};

struct StoredShare {
  // Set when the share was made; else `refusal` says why not.
  std::optional<ShareRecord> share;
  ShareRefusal refusal = ShareRefusal::kNone;
};

// What the share domain needs of storage (services/message/share_storage.h
// keeps it in PostgreSQL). The owner's calls see only that user's
// conversations and shares; SharedByToken sees one snapshot, by its hash.
class ShareStore {
 public:
  virtual ~ShareStore() = default;

  // Copies the conversation's active branch (root first, without replies
  // still in progress and without empty messages) and its title into a new
  // share `share.id` made at `share.created_at`, keeping `token_hash`. Its
  // message_count is filled in. NOT_FOUND when the user has no such
  // conversation; a refusal when a limit is reached (nothing is stored).
  virtual absl::StatusOr<StoredShare> CreateShare(
      const std::string& user_id, const ShareRecord& share,
      const std::string& token_hash, const ShareLimits& limits) = 0;
  // The conversation's shares, newest first. NOT_FOUND when the user has no
  // such conversation.
  virtual absl::StatusOr<std::vector<ShareRecord>> ListShares(
      const std::string& user_id, const std::string& conversation_id) = 0;
  // NOT_FOUND when the user has no such share of that conversation.
  virtual absl::Status DeleteShare(const std::string& user_id,
                                   const std::string& conversation_id,
                                   const std::string& share_id) = 0;
  // The snapshot whose token hashes to `token_hash`; NOT_FOUND when there
  // is none (never made, revoked, or its conversation or owner is gone).
  virtual absl::StatusOr<SharedSnapshot> SharedByToken(
      const std::string& token_hash) = 0;
};

struct SharesOptions {
  // Put before "/v1/shares/<token>" in a share's url; empty: the path alone.
  std::string public_base_url;
};

// A share just made: the only time its token and url are known.
struct CreatedShare {
  ShareRecord share;
  std::string token;
  std::string url;
};

class Shares {
 public:
  Shares(ShareStore* store, const Clock* clock, SharesOptions options);

  absl::StatusOr<CreatedShare> Create(const std::string& user_id,
                                      const std::string& conversation_id);
  absl::StatusOr<std::vector<ShareRecord>> List(
      const std::string& user_id, const std::string& conversation_id);
  absl::Status Delete(const std::string& user_id,
                      const std::string& conversation_id,
                      const std::string& share_id);
  // No caller: the token is the credential. An unknown, malformed or
  // revoked token is the same NOT_FOUND.
  absl::StatusOr<SharedSnapshot> View(absl::string_view token);

 private:
  ShareStore* store_;
  const Clock* clock_;
  SharesOptions options_;
};

// A new share token: 256 random bits as 43 characters of base64url.
std::string NewShareToken();

// The SHA-256 (hex) that is all the database keeps of a token; nullopt when
// `token` is not of our form (43 characters of canonical base64url).
std::optional<std::string> ShareTokenHash(absl::string_view token);

// `base` (a trailing "/" dropped) followed by "/v1/shares/<token>".
std::string ShareUrl(absl::string_view base, absl::string_view token);

// OK when `base` is empty or an http(s) URL without query or fragment.
absl::Status CheckPublicBaseUrl(absl::string_view base);

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_SHARES_H_
