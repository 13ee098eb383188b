#include "services/message/in_memory_share_store.h"

#include <algorithm>

#include "absl/strings/ascii.h"

namespace chat::message {
namespace {

absl::Status ConversationNotFound() {
  return absl::NotFoundError("conversation not found");
}

}  // namespace

std::vector<std::string> InMemoryShareStore::TokenHashes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> hashes;
  for (const auto& [id, stored] : shares_) hashes.push_back(stored.token_hash);
  return hashes;
}

absl::StatusOr<StoredShare> InMemoryShareStore::CreateShare(
    const std::string& user_id, const ShareRecord& share,
    const std::string& token_hash, const ShareLimits& limits) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!messages_->Conversation(user_id, share.conversation_id)) {
    return ConversationNotFound();
  }
  const std::string conversation = absl::AsciiStrToLower(share.conversation_id);
  int existing = 0;
  for (const auto& [id, stored] : shares_) {
    existing += stored.user_id == user_id &&
                stored.share.conversation_id == conversation;
  }
  if (existing >= limits.max_shares) {
    return StoredShare{.refusal = ShareRefusal::kTooManyShares};
  }
  SharedSnapshot snapshot{
      .title = messages_->Title(user_id, share.conversation_id),
      .created_at = share.created_at};
  const std::vector<std::string> branch =
      messages_->ActiveBranch(user_id, share.conversation_id);
  const std::vector<MessageRecord> stored =
      messages_->StoredMessages(user_id, share.conversation_id);
  int64_t bytes = 0;
  for (const std::string& id : branch) {
    auto m = std::find_if(stored.begin(), stored.end(),
                          [&](const MessageRecord& r) { return r.id == id; });
    if (m == stored.end() || m->status == MessageStatus::kInProgress ||
        m->content.empty()) {
      continue;
    }
    bytes += static_cast<int64_t>(m->content.size());
    snapshot.messages.push_back({m->role, m->content, m->model, m->created_at});
  }
  if (snapshot.messages.empty()) {
    return StoredShare{.refusal = ShareRefusal::kEmpty};
  }
  if (static_cast<int64_t>(snapshot.messages.size()) > limits.max_messages ||
      bytes > limits.max_content_bytes) {
    return StoredShare{.refusal = ShareRefusal::kTooLarge};
  }
  ShareRecord made = share;
  made.conversation_id = conversation;
  made.message_count = static_cast<int>(snapshot.messages.size());
  shares_[made.id] = {user_id, made, token_hash, std::move(snapshot)};
  return StoredShare{.share = made};
}

absl::StatusOr<std::vector<ShareRecord>> InMemoryShareStore::ListShares(
    const std::string& user_id, const std::string& conversation_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!messages_->Conversation(user_id, conversation_id)) {
    return ConversationNotFound();
  }
  const std::string conversation = absl::AsciiStrToLower(conversation_id);
  std::vector<ShareRecord> list;
  for (const auto& [id, stored] : shares_) {
    if (stored.user_id == user_id &&
        stored.share.conversation_id == conversation) {
      list.push_back(stored.share);
    }
  }
  std::sort(list.begin(), list.end(),
            [](const ShareRecord& a, const ShareRecord& b) {
              return a.created_at != b.created_at ? a.created_at > b.created_at
                                                  : a.id > b.id;
            });
  return list;
}

absl::Status InMemoryShareStore::DeleteShare(const std::string& user_id,
                                             const std::string& conversation_id,
                                             const std::string& share_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = shares_.find(absl::AsciiStrToLower(share_id));
  if (it == shares_.end() || it->second.user_id != user_id ||
      it->second.share.conversation_id !=
          absl::AsciiStrToLower(conversation_id)) {
    return absl::NotFoundError("share not found");
  }
  shares_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<SharedSnapshot> InMemoryShareStore::SharedByToken(
    const std::string& token_hash) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [id, stored] : shares_) {
    if (stored.token_hash == token_hash) return stored.snapshot;
  }
  return absl::NotFoundError("share not found");
}

}  // namespace chat::message
