#ifndef CHAT_SERVICES_MESSAGE_TRANSFERS_H_
#define CHAT_SERVICES_MESSAGE_TRANSFERS_H_

// Export and import of a user's whole history (docs/api.md "Export and
// import"): every conversation with every message of every branch, out as
// a stream in constant memory, and in again, all or nothing, skipping the
// conversations the user already has. The rules live here; the format of
// the uploaded file is the gateway's business: it sends items (a
// conversation, then its messages, parents first), each with the place in
// the file that an error quotes.

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/conversation_record.h"
#include "common/metadata.h"
#include "services/message/messages.h"

namespace chat::message {

// A conversation as exported and imported (an import's `untitled` is set
// only when the file gives no title).
using ::chat::ConversationRecord;

// One item of an upload, as the gateway parsed it. Times the file does not
// have are nullopt; text fields are as the file spells them.
struct ImportedConversation {
  std::string id;
  std::string title;
  Metadata metadata;
  bool archived = false;
  bool pinned = false;
  std::optional<absl::Time> created_at;
  std::optional<absl::Time> updated_at;
  std::string active_leaf_id;  // "": the last message of the conversation
};

struct ImportedMessage {
  std::string id;
  std::string parent_id;  // "": a root
  std::string role;
  std::string content;
  std::string status;  // "": complete
  std::string model;
  Metadata metadata;
  std::optional<absl::Time> created_at;
  std::optional<absl::Time> updated_at;
};

struct ImportItem {
  // Where the item is in the file ("line 3", "$[2].mapping.x"); errors
  // about the item start with it.
  std::string source;
  std::variant<ImportedConversation, ImportedMessage> item;
};

// Where the items of an import come from (the gRPC stream). nullopt at the
// end; an error when the stream broke.
class ImportSource {
 public:
  virtual ~ImportSource() = default;
  virtual absl::StatusOr<std::optional<ImportItem>> Next() = 0;
};

// Where an export goes (the gRPC stream). False when the client is gone.
class ExportSink {
 public:
  virtual ~ExportSink() = default;
  virtual bool Conversation(const ConversationRecord& conversation) = 0;
  virtual bool Messages(const std::vector<MessageRecord>& messages) = 0;
};

// What an import writes, inside the store's one transaction.
class ImportWriter {
 public:
  virtual ~ImportWriter() = default;
  // Starts storing `conversation` (its counts and active leaf come with
  // End); false, storing nothing, when the user already has its id.
  virtual absl::StatusOr<bool> Begin(
      const ConversationRecord& conversation) = 0;
  // The next messages of the conversation begun last, parents first; their
  // seq is their place in the conversation, from 1.
  virtual absl::Status Add(const std::vector<MessageRecord>& messages) = 0;
  // Ends the conversation begun last: `done` holds its final counts,
  // activity and active leaf, `active_path` the ids of the messages from
  // its root to that leaf (empty without messages).
  virtual absl::Status End(const ConversationRecord& done,
                           const std::vector<std::string>& active_path) = 0;
};

// What export and import need of storage (services/message/
// transfer_storage.h keeps it in PostgreSQL). `slots` is how many exports
// and imports one user may run at once, across every replica: when that
// many run, RESOURCE_EXHAUSTED.
class TransferStore {
 public:
  virtual ~TransferStore() = default;
  // Every conversation of the user, oldest first, each followed by its
  // messages in creation order (a parent before its children), from one
  // snapshot, in batches of at most `batch` messages. Stops early, OK, when
  // the sink refuses.
  virtual absl::Status Export(const std::string& user_id, int slots, int batch,
                              ExportSink& sink) = 0;
  // Runs `body` in one transaction and commits when it returns OK.
  // `body` runs at most once: when the database fails after it started,
  // the import fails and nothing is stored.
  virtual absl::Status Import(
      const std::string& user_id, int slots,
      const std::function<absl::Status(ImportWriter&)>& body) = 0;
};

// How many exports and imports this process runs at once: each holds a
// database connection for its whole length, so they must leave the pool to
// replies and reads. Thread-safe.
class TransferSlots {
 public:
  explicit TransferSlots(int size) : free_(size) {}
  // False when every slot is taken.
  bool TryTake();
  void Give();

 private:
  std::atomic<int> free_;
};

struct TransferOptions {
  // Exports and imports one user may run at once, across replicas.
  int per_user = 2;
  // Messages per exported batch, and per batch an import writes.
  int batch = 256;
};

class Transfers {
 public:
  Transfers(TransferStore* store, TransferSlots* slots, const Clock* clock,
            TransferOptions options)
      : store_(store), slots_(slots), clock_(clock), options_(options) {}

  absl::Status Export(const std::string& user_id, ExportSink& sink);

  struct Counts {
    int imported = 0;  // conversations stored
    int skipped = 0;   // conversations the user already had
  };
  // Reads every item of `source` and stores them all, or nothing: the
  // first bad item is INVALID_ARGUMENT "<source>: <what is wrong>" with
  // its field violations.
  absl::StatusOr<Counts> Import(const std::string& user_id,
                                ImportSource& source);

 private:
  // RESOURCE_EXHAUSTED unless a slot of this process is free; the slot is
  // given back when `run` returns.
  absl::Status WithSlot(const std::function<absl::Status()>& run);

  TransferStore* store_;
  TransferSlots* slots_;
  const Clock* clock_;
  TransferOptions options_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_TRANSFERS_H_
