#ifndef CHAT_SERVICES_MESSAGE_TRANSFER_STORAGE_H_
#define CHAT_SERVICES_MESSAGE_TRANSFER_STORAGE_H_

// Export and import in PostgreSQL. An export reads one snapshot through a
// cursor, so neither side holds more than a batch of rows; an import is one
// transaction. A user's exports and imports hold transaction-level advisory
// locks from a small set of slots, so every replica counts them.

#include <functional>
#include <string>
#include <vector>

#include "common/db.h"
#include "services/message/transfers.h"

namespace chat::message {

class TransferStorage final : public TransferStore {
 public:
  explicit TransferStorage(DbPool* pool) : pool_(pool) {}

  static std::vector<PreparedStatement> Statements();

  absl::Status Export(const std::string& user_id, int slots, int batch,
                      ExportSink& sink) override;
  absl::Status Import(
      const std::string& user_id, int slots,
      const std::function<absl::Status(ImportWriter&)>& body) override;

 private:
  DbPool* pool_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_TRANSFER_STORAGE_H_
