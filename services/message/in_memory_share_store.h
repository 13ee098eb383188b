#ifndef CHAT_SERVICES_MESSAGE_IN_MEMORY_SHARE_STORE_H_
#define CHAT_SERVICES_MESSAGE_IN_MEMORY_SHARE_STORE_H_

// ShareStore in memory, for unit tests of the share domain, over the
// conversations and messages of an InMemoryMessageStore: the same
// observable semantics as ShareStorage (services/message/share_storage.cc)
// without a database. A snapshot copies the active branch without replies
// in progress and empty messages. (The in-memory message store deletes no
// conversations, so the cascade that revokes their shares is the SQL's,
// tested in tests/integration.) Thread-safe: every call holds one mutex.
//
//   InMemoryMessageStore messages;
//   InMemoryShareStore store(&messages);
//   Shares shares(&store, &clock, {});

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "services/message/in_memory_message_store.h"
#include "services/message/shares.h"

namespace chat::message {

class InMemoryShareStore final : public ShareStore {
 public:
  explicit InMemoryShareStore(InMemoryMessageStore* messages)
      : messages_(messages) {}

  // The token hashes kept, in no order (what the table keeps of tokens).
  std::vector<std::string> TokenHashes() const;

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
  struct Stored {
    std::string user_id;
    ShareRecord share;
    std::string token_hash;
    SharedSnapshot snapshot;
  };
  InMemoryMessageStore* messages_;
  mutable std::mutex mutex_;
  std::map<std::string, Stored> shares_;  // by id
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_IN_MEMORY_SHARE_STORE_H_
