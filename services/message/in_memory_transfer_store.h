#ifndef CHAT_SERVICES_MESSAGE_IN_MEMORY_TRANSFER_STORE_H_
#define CHAT_SERVICES_MESSAGE_IN_MEMORY_TRANSFER_STORE_H_

// TransferStore in memory, for unit tests of services/message/transfers.h:
// an import stages its writes and keeps them only when its body succeeds,
// like the one transaction of TransferStorage. Thread-safe.

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "services/message/transfers.h"

namespace chat::message {

class InMemoryTransferStore final : public TransferStore {
 public:
  struct Stored {
    ConversationRecord conversation;
    std::vector<MessageRecord> messages;  // in seq order
  };

  absl::Status Export(const std::string& user_id, int slots, int batch,
                      ExportSink& sink) override;
  absl::Status Import(
      const std::string& user_id, int slots,
      const std::function<absl::Status(ImportWriter&)>& body) override;

  // The user's conversations by id.
  std::map<std::string, Stored> Of(const std::string& user_id) const;
  void Put(const std::string& user_id, Stored stored);

 private:
  // The user's transfers in progress, against `slots`.
  bool Take(const std::string& user_id, int slots);
  void Give(const std::string& user_id);

  mutable std::mutex mutex_;
  std::map<std::string, std::map<std::string, Stored>> users_;
  std::map<std::string, int> running_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_IN_MEMORY_TRANSFER_STORE_H_
