#include "services/message/in_memory_transfer_store.h"

#include <algorithm>
#include <utility>

#include "common/errors.h"

namespace chat::message {
namespace {

// Writes into a copy of the user's conversations, kept only on success.
class StagingWriter final : public ImportWriter {
 public:
  explicit StagingWriter(
      std::map<std::string, InMemoryTransferStore::Stored> conversations)
      : conversations_(std::move(conversations)) {}

  absl::StatusOr<bool> Begin(const ConversationRecord& c) override {
    if (conversations_.contains(c.id)) return false;
    conversations_[c.id].conversation = c;
    current_ = c.id;
    return true;
  }
  absl::Status Add(const std::vector<MessageRecord>& messages) override {
    auto& stored = conversations_.at(current_).messages;
    stored.insert(stored.end(), messages.begin(), messages.end());
    return absl::OkStatus();
  }
  absl::Status End(const ConversationRecord& done) override {
    conversations_.at(current_).conversation = done;
    return absl::OkStatus();
  }

  std::map<std::string, InMemoryTransferStore::Stored>& conversations() {
    return conversations_;
  }

 private:
  std::map<std::string, InMemoryTransferStore::Stored> conversations_;
  std::string current_;
};

absl::Status Busy() {
  return ResourceExhaustedRetryAfter("too many transfers", absl::Seconds(5));
}

}  // namespace

bool InMemoryTransferStore::Take(const std::string& user_id, int slots) {
  std::lock_guard lock(mutex_);
  if (running_[user_id] >= slots) return false;
  ++running_[user_id];
  return true;
}

void InMemoryTransferStore::Give(const std::string& user_id) {
  std::lock_guard lock(mutex_);
  --running_[user_id];
}

absl::Status InMemoryTransferStore::Export(const std::string& user_id,
                                           int slots, int batch,
                                           ExportSink& sink) {
  if (!Take(user_id, slots)) return Busy();
  std::vector<Stored> all;
  for (auto& [id, stored] : Of(user_id)) all.push_back(std::move(stored));
  std::stable_sort(
      all.begin(), all.end(), [](const Stored& a, const Stored& b) {
        return a.conversation.created_at < b.conversation.created_at;
      });
  for (const Stored& s : all) {
    if (!sink.Conversation(s.conversation)) break;
    for (size_t i = 0; i < s.messages.size(); i += batch) {
      std::vector<MessageRecord> part(
          s.messages.begin() + i,
          s.messages.begin() + std::min(s.messages.size(), i + batch));
      if (!sink.Messages(part)) break;
    }
  }
  Give(user_id);
  return absl::OkStatus();
}

absl::Status InMemoryTransferStore::Import(
    const std::string& user_id, int slots,
    const std::function<absl::Status(ImportWriter&)>& body) {
  if (!Take(user_id, slots)) return Busy();
  StagingWriter writer(Of(user_id));
  absl::Status status = body(writer);
  if (status.ok()) {
    std::lock_guard lock(mutex_);
    // Another import's conversations of the meantime stay; this one's
    // are added (an id both made is kept once, like a unique key).
    for (auto& [id, stored] : writer.conversations())
      users_[user_id].try_emplace(id, std::move(stored));
  }
  Give(user_id);
  return status;
}

std::map<std::string, InMemoryTransferStore::Stored> InMemoryTransferStore::Of(
    const std::string& user_id) const {
  std::lock_guard lock(mutex_);
  auto it = users_.find(user_id);
  return it == users_.end() ? std::map<std::string, Stored>{} : it->second;
}

void InMemoryTransferStore::Put(const std::string& user_id, Stored stored) {
  std::lock_guard lock(mutex_);
  users_[user_id][stored.conversation.id] = std::move(stored);
}

}  // namespace chat::message
