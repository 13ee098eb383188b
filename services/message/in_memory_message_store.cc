#include "services/message/in_memory_message_store.h"

#include <algorithm>
#include <limits>

#include "absl/strings/ascii.h"
#include "common/errors.h"
#include "common/utf8.h"

namespace chat::message {
namespace {

absl::Status ConversationNotFound() {
  return absl::NotFoundError("conversation not found");
}
absl::Status MessageNotFound() {
  return absl::NotFoundError("message not found");
}

// PostgreSQL reads a uuid in either case and prints it in lower case.
std::string Canonical(const std::string& id) {
  return absl::AsciiStrToLower(id);
}

// GREATEST(a, b), where a NULL `a` is ignored as PostgreSQL ignores it.
absl::Time Greatest(std::optional<absl::Time> a, absl::Time b) {
  return a ? std::max(*a, b) : b;
}

template <typename Messages>
auto FindMessage(Messages& messages, const std::string& id)
    -> decltype(&messages.begin()->second) {
  const std::string wanted = Canonical(id);
  for (auto& [seq, message] : messages) {
    if (message.id == wanted) return &message;
  }
  return nullptr;
}

}  // namespace

void InMemoryMessageStore::AddConversation(const std::string& user_id,
                                           const std::string& conversation_id,
                                           bool untitled, std::string title) {
  std::lock_guard<std::mutex> lock(mutex_);
  StoredConversation& conversation =
      conversations_[{Canonical(user_id), Canonical(conversation_id)}];
  conversation = StoredConversation{};
  conversation.state.untitled = untitled;
  conversation.state.title = std::move(title);
}

std::optional<InMemoryMessageStore::ConversationState>
InMemoryMessageStore::Conversation(const std::string& user_id,
                                   const std::string& conversation_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const StoredConversation* conversation = Find(user_id, conversation_id);
  if (conversation == nullptr) return std::nullopt;
  return conversation->state;
}

std::string InMemoryMessageStore::Title(
    const std::string& user_id, const std::string& conversation_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const StoredConversation* conversation = Find(user_id, conversation_id);
  return conversation == nullptr ? "" : conversation->state.title;
}

std::vector<MessageRecord> InMemoryMessageStore::StoredMessages(
    const std::string& user_id, const std::string& conversation_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<MessageRecord> messages;
  const StoredConversation* conversation = Find(user_id, conversation_id);
  if (conversation == nullptr) return messages;
  for (const auto& [seq, message] : conversation->messages) {
    messages.push_back(message);
  }
  return messages;
}

std::vector<std::string> InMemoryMessageStore::ActiveBranch(
    const std::string& user_id, const std::string& conversation_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> ids;
  const StoredConversation* conversation = Find(user_id, conversation_id);
  if (conversation == nullptr) return ids;
  for (const MessageRecord* message :
       PathTo(*conversation, conversation->state.active_leaf_id)) {
    ids.push_back(message->id);
  }
  return ids;
}

MessageRecord InMemoryMessageStore::Placed(
    const StoredConversation& conversation, const MessageRecord& message) {
  MessageRecord placed = message;
  placed.sibling_index = 0;
  placed.sibling_count = 0;
  for (const auto& [seq, other] : conversation.messages) {
    if (other.parent_id != message.parent_id) continue;
    ++placed.sibling_count;
    if (seq < message.seq) ++placed.sibling_index;
  }
  return placed;
}

std::vector<const MessageRecord*> InMemoryMessageStore::PathTo(
    const StoredConversation& conversation, const std::string& id) {
  std::vector<const MessageRecord*> path;
  for (const MessageRecord* message = FindMessage(conversation.messages, id);
       message != nullptr;
       message = FindMessage(conversation.messages, message->parent_id)) {
    path.push_back(message);
  }
  std::reverse(path.begin(), path.end());
  return path;
}

std::string InMemoryMessageStore::NewestLeafUnder(
    const StoredConversation& conversation, const std::string& id) {
  std::string leaf = Canonical(id);
  for (;;) {
    const MessageRecord* newest_child = nullptr;
    for (const auto& [seq, message] : conversation.messages) {
      if (message.parent_id == leaf) newest_child = &message;  // seq order
    }
    if (newest_child == nullptr) return leaf;
    leaf = newest_child->id;
  }
}

size_t InMemoryMessageStore::IdempotencyKeyCount(
    const std::string& user_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string user = Canonical(user_id);
  return std::count_if(
      idempotency_keys_.begin(), idempotency_keys_.end(),
      [&](const auto& entry) { return entry.first.first == user; });
}

void InMemoryMessageStore::InjectError(Method method, absl::Status error) {
  std::lock_guard<std::mutex> lock(mutex_);
  injected_errors_[method] = std::move(error);
}

absl::Status InMemoryMessageStore::TakeInjectedError(Method method) {
  auto it = injected_errors_.find(method);
  if (it == injected_errors_.end()) return absl::OkStatus();
  absl::Status error = std::move(it->second);
  injected_errors_.erase(it);
  return error;
}

InMemoryMessageStore::StoredConversation* InMemoryMessageStore::Find(
    const std::string& user_id, const std::string& conversation_id) {
  auto it =
      conversations_.find({Canonical(user_id), Canonical(conversation_id)});
  return it == conversations_.end() ? nullptr : &it->second;
}

const InMemoryMessageStore::StoredConversation* InMemoryMessageStore::Find(
    const std::string& user_id, const std::string& conversation_id) const {
  auto it =
      conversations_.find({Canonical(user_id), Canonical(conversation_id)});
  return it == conversations_.end() ? nullptr : &it->second;
}

absl::StatusOr<MessageRecord> InMemoryMessageStore::Append(
    const std::string& user_id, const MessageRecord& message,
    const ParentChoice& parent, const std::optional<IdempotencyKey>& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kAppend); !error.ok()) {
    return error;
  }
  const std::string user = Canonical(user_id);
  StoredConversation* conversation = Find(user_id, message.conversation_id);
  if (key) {
    // As ClaimIdempotencyKey: drop the user's keys older than the window,
    // then the first request that used the key decides.
    const absl::Time horizon = message.created_at - kIdempotencyWindow;
    for (auto it = idempotency_keys_.begin(); it != idempotency_keys_.end();) {
      const bool expired =
          it->first.first == user && it->second.created_at <= horizon;
      it = expired ? idempotency_keys_.erase(it) : std::next(it);
    }
    auto first = idempotency_keys_.find({user, key->key});
    if (first != idempotency_keys_.end()) {
      if (first->second.request_hash != key->request_hash) {
        return ErrorWithViolations(
            absl::StatusCode::kAlreadyExists,
            "this Idempotency-Key was already used for another request",
            {{"idempotency_key", "was already used for another request"}});
      }
      // The replay answers the message as it is now.
      MessageRecord* replayed =
          conversation == nullptr
              ? nullptr
              : FindMessage(conversation->messages, first->second.resource_id);
      if (replayed == nullptr) return MessageNotFound();
      return Placed(*conversation, *replayed);
    }
  }
  // Without the conversation or the parent the transaction rolls back: no
  // key is kept.
  absl::StatusOr<MessageRecord> stored = AppendLocked(user_id, message, parent);
  if (!stored.ok()) return stored.status();
  if (key) {
    idempotency_keys_[{user, key->key}] = StoredKey{
        .request_hash = key->request_hash,
        .resource_id = stored->id,
        .created_at = message.created_at,
    };
  }
  return stored;
}

absl::StatusOr<MessageRecord> InMemoryMessageStore::AppendLocked(
    const std::string& user_id, const MessageRecord& message,
    const ParentChoice& parent) {
  StoredConversation* conversation = Find(user_id, message.conversation_id);
  if (conversation == nullptr) return ConversationNotFound();
  ConversationState& state = conversation->state;
  const std::string parent_id =
      parent ? Canonical(*parent) : state.active_leaf_id;
  if (!parent_id.empty() &&
      FindMessage(conversation->messages, parent_id) == nullptr) {
    return absl::NotFoundError("parent message not found");
  }

  state.message_count += 1;
  state.last_seq += 1;
  state.last_message_at = Greatest(state.last_message_at, message.created_at);
  state.updated_at = Greatest(state.updated_at, message.created_at);

  MessageRecord stored = message;
  stored.id = Canonical(message.id);
  stored.conversation_id = Canonical(message.conversation_id);
  stored.seq = state.last_seq;
  stored.parent_id = parent_id;
  // Never earlier than the previous message's time.
  stored.created_at = *state.last_message_at;
  stored.updated_at = *state.last_message_at;
  conversation->messages[stored.seq] = stored;
  state.active_leaf_id = stored.id;
  return Placed(*conversation, stored);
}

absl::StatusOr<MessageRecord> InMemoryMessageStore::Get(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kGet); !error.ok()) {
    return error;
  }
  // One query by (user, conversation, id): a missing conversation is a
  // missing message.
  StoredConversation* conversation = Find(user_id, conversation_id);
  MessageRecord* message = conversation == nullptr
                               ? nullptr
                               : FindMessage(conversation->messages, id);
  if (message == nullptr) return MessageNotFound();
  return Placed(*conversation, *message);
}

absl::StatusOr<std::vector<MessageRecord>> InMemoryMessageStore::List(
    const std::string& user_id, const std::string& conversation_id,
    Branch branch, bool descending, std::optional<int64_t> after, int limit,
    int64_t content_budget) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kList); !error.ok()) {
    return error;
  }
  const StoredConversation* conversation = Find(user_id, conversation_id);
  if (conversation == nullptr) return ConversationNotFound();
  const int64_t from =
      after.value_or(descending ? std::numeric_limits<int64_t>::max() : 0);

  std::vector<MessageRecord> page;
  int64_t content_before = 0;
  // The SQL: up to `limit` rows past the cursor, of which those whose
  // preceding content has not passed the budget.
  auto take = [&](const MessageRecord& message) {
    if (static_cast<int>(page.size()) >= limit) return false;
    if (content_before > content_budget) return false;
    page.push_back(Placed(*conversation, message));
    content_before += static_cast<int64_t>(message.content.size());
    return true;
  };
  std::map<int64_t, MessageRecord> messages;
  if (branch == Branch::kAll) {
    messages = conversation->messages;
  } else {
    for (const MessageRecord* message :
         PathTo(*conversation, conversation->state.active_leaf_id)) {
      messages[message->seq] = *message;
    }
  }
  if (descending) {
    for (auto it = std::make_reverse_iterator(messages.lower_bound(from));
         it != messages.rend() && take(it->second); ++it) {
    }
  } else {
    for (auto it = messages.upper_bound(from);
         it != messages.end() && take(it->second); ++it) {
    }
  }
  return page;
}

absl::StatusOr<MessageRecord> InMemoryMessageStore::Update(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& id, const MessageChange& change, absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kUpdate); !error.ok()) {
    return error;
  }
  StoredConversation* conversation = Find(user_id, conversation_id);
  if (conversation == nullptr) return ConversationNotFound();
  MessageRecord* message = FindMessage(conversation->messages, id);
  if (message == nullptr) return MessageNotFound();
  if (change.content) message->content = *change.content;
  if (change.metadata) message->metadata = *change.metadata;
  message->updated_at = now;
  conversation->state.updated_at =
      Greatest(conversation->state.updated_at, now);
  return Placed(*conversation, *message);
}

absl::Status InMemoryMessageStore::Delete(const std::string& user_id,
                                          const std::string& conversation_id,
                                          const std::string& id,
                                          absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kDelete); !error.ok()) {
    return error;
  }
  StoredConversation* conversation = Find(user_id, conversation_id);
  if (conversation == nullptr) return ConversationNotFound();
  const MessageRecord* message = FindMessage(conversation->messages, id);
  if (message == nullptr) return MessageNotFound();
  ConversationState& state = conversation->state;
  std::vector<std::string> active;
  for (const MessageRecord* on_path :
       PathTo(*conversation, state.active_leaf_id)) {
    active.push_back(on_path->id);
  }
  const bool was_active =
      std::find(active.begin(), active.end(), message->id) != active.end();
  const std::string parent_id = message->parent_id;
  // The subtree: every message whose path passes through this one.
  std::vector<int64_t> doomed;
  for (const auto& [seq, other] : conversation->messages) {
    for (const MessageRecord* step : PathTo(*conversation, other.id)) {
      if (step->id == message->id) {
        doomed.push_back(seq);
        break;
      }
    }
  }
  for (int64_t seq : doomed) conversation->messages.erase(seq);
  if (was_active) {
    if (!parent_id.empty()) {
      state.active_leaf_id = parent_id;
    } else {
      const MessageRecord* newest_root = nullptr;
      for (const auto& [seq, other] : conversation->messages) {
        if (other.parent_id.empty()) newest_root = &other;
      }
      state.active_leaf_id =
          newest_root == nullptr
              ? ""
              : NewestLeafUnder(*conversation, newest_root->id);
    }
  }
  state.message_count -= static_cast<int64_t>(doomed.size());
  state.updated_at = Greatest(state.updated_at, now);
  // The newest remaining message's time, by position; positions are not
  // handed out again.
  state.last_message_at =
      conversation->messages.empty()
          ? std::nullopt
          : std::optional<absl::Time>(
                conversation->messages.rbegin()->second.created_at);
  return absl::OkStatus();
}

absl::Status InMemoryMessageStore::Clear(const std::string& user_id,
                                         const std::string& conversation_id,
                                         absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kClear); !error.ok()) {
    return error;
  }
  StoredConversation* conversation = Find(user_id, conversation_id);
  if (conversation == nullptr) return ConversationNotFound();
  conversation->messages.clear();
  ConversationState& state = conversation->state;
  state.message_count = 0;
  state.active_leaf_id.clear();
  state.last_message_at = std::nullopt;
  state.updated_at = Greatest(state.updated_at, now);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ContextMessage>> InMemoryMessageStore::ContextPath(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& last_id, int max_messages, int64_t budget_chars) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kContextPath);
      !error.ok()) {
    return error;
  }
  // The SQL checks no conversation: another user's reads as empty.
  const StoredConversation* conversation = Find(user_id, conversation_id);
  if (conversation == nullptr) return std::vector<ContextMessage>{};
  return ContextPathLocked(*conversation, last_id, max_messages, budget_chars);
}

std::vector<ContextMessage> InMemoryMessageStore::ContextPathLocked(
    const StoredConversation& conversation, const std::string& last_id,
    int max_messages, int64_t budget_chars) const {
  std::vector<ContextMessage> context;
  std::vector<const MessageRecord*> path = PathTo(conversation, last_id);
  int usable = 0;
  int64_t used = 0;
  for (auto it = path.rbegin(); it != path.rend() && usable < max_messages;
       ++it) {
    const MessageRecord& message = **it;
    if (message.status == MessageStatus::kFailed || message.content.empty()) {
      continue;
    }
    ++usable;
    // length(content): characters, as the database counts them.
    used += static_cast<int64_t>(
        CountCodePoints(message.content).value_or(message.content.size()));
    if (used > budget_chars) break;  // a running sum: the rest is older
    context.push_back({message.role, message.content});
  }
  return context;
}

absl::StatusOr<bool> InMemoryMessageStore::NameUntitled(
    const std::string& user_id, const std::string& conversation_id,
    const std::function<std::string(const std::string&)>&
        title_of_first_message,
    absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kNameUntitled);
      !error.ok()) {
    return error;
  }
  StoredConversation* conversation = Find(user_id, conversation_id);
  if (conversation == nullptr || !conversation->state.untitled) return false;
  const MessageRecord* first_user_message = nullptr;
  for (const auto& [seq, message] : conversation->messages) {
    if (message.role == Role::kUser) {
      first_user_message = &message;
      break;
    }
  }
  if (first_user_message == nullptr) return false;
  // Called under the lock, as the SQL calls it inside its transaction: it
  // must not call back into the store.
  std::string title = title_of_first_message(first_user_message->content);
  if (title.empty()) return false;
  conversation->state.title = std::move(title);
  conversation->state.untitled = false;
  conversation->state.updated_at =
      Greatest(conversation->state.updated_at, now);
  return true;
}

absl::StatusOr<ForkedConversation> InMemoryMessageStore::Fork(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& message_id, const ForkedConversation& fork,
    const std::function<std::string()>& new_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kFork); !error.ok()) {
    return error;
  }
  const StoredConversation* source = Find(user_id, conversation_id);
  if (source == nullptr) return ConversationNotFound();
  std::vector<const MessageRecord*> path = PathTo(*source, message_id);
  if (path.empty()) return MessageNotFound();

  StoredConversation copy;
  copy.state.title = fork.title.empty() ? source->state.title : fork.title;
  copy.state.untitled = fork.title.empty() && source->state.untitled;
  copy.state.metadata = source->state.metadata;
  copy.state.created_at = fork.created_at;
  copy.state.updated_at = fork.updated_at;
  std::string parent_id;
  for (const MessageRecord* original : path) {
    MessageRecord message = *original;
    message.id = Canonical(new_id());
    message.conversation_id = Canonical(fork.id);
    message.parent_id = parent_id;
    message.seq = ++copy.state.last_seq;
    if (message.status == MessageStatus::kInProgress) {
      message.status = MessageStatus::kIncomplete;
    }
    parent_id = message.id;
    copy.state.last_message_at = message.created_at;
    copy.messages[message.seq] = std::move(message);
  }
  copy.state.message_count = static_cast<int64_t>(path.size());
  copy.state.active_leaf_id = parent_id;

  ForkedConversation made = fork;
  made.title = copy.state.title;
  made.metadata = copy.state.metadata;
  made.message_count = copy.state.message_count;
  made.last_message_at = copy.state.last_message_at;
  made.active_leaf_id = copy.state.active_leaf_id;
  conversations_[{Canonical(user_id), Canonical(fork.id)}] = std::move(copy);
  return made;
}

absl::StatusOr<StartedReply> InMemoryMessageStore::StartReply(
    const std::string& user_id, const std::optional<MessageRecord>& prompt,
    const ParentChoice& prompt_parent, const MessageRecord& reply,
    const ParentChoice& reply_parent, int64_t owner, int max_in_progress,
    const ContextLimits& context) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kStartReply);
      !error.ok()) {
    return error;
  }
  const std::string user = Canonical(user_id);
  int in_progress = 0;
  for (const auto& [key, conversation] : conversations_) {
    if (key.first == user) {
      in_progress += static_cast<int>(conversation.owners.size());
    }
  }
  if (in_progress >= max_in_progress) {
    return ResourceExhaustedRetryAfter(
        "too many replies in progress for this user at once", absl::Seconds(1));
  }
  StoredConversation* conversation = Find(user_id, reply.conversation_id);
  if (conversation == nullptr) return ConversationNotFound();
  // All or nothing, as the transaction: undo the prompt if the reply fails.
  const StoredConversation before = *conversation;
  StartedReply started;
  ParentChoice parent = reply_parent;
  if (prompt) {
    absl::StatusOr<MessageRecord> stored =
        AppendLocked(user_id, *prompt, prompt_parent);
    if (!stored.ok()) return stored.status();
    started.prompt = *stored;
    parent = stored->id;
  }
  absl::StatusOr<MessageRecord> stored = AppendLocked(user_id, reply, parent);
  if (!stored.ok()) {
    *conversation = before;
    return stored.status();
  }
  started.reply = *stored;
  conversation->owners[started.reply.id] = owner;
  if (started.prompt && context.budget_chars > 0) {
    started.context =
        ContextPathLocked(*conversation, started.prompt->parent_id,
                          context.max_messages, context.budget_chars);
  }
  return started;
}

absl::StatusOr<absl::flat_hash_set<std::string>>
InMemoryMessageStore::SaveReplyTexts(int64_t owner,
                                     const std::vector<ReplyText>& replies,
                                     absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kSaveReplyTexts);
      !error.ok()) {
    return error;
  }
  absl::flat_hash_set<std::string> ours;
  for (const ReplyText& r : replies) {
    StoredConversation* conversation = Find(r.user_id, r.conversation_id);
    if (conversation == nullptr) continue;
    MessageRecord* message = FindMessage(conversation->messages, r.id);
    auto owned = conversation->owners.find(Canonical(r.id));
    if (message == nullptr || message->status != MessageStatus::kInProgress ||
        owned == conversation->owners.end() || owned->second != owner) {
      continue;
    }
    if (r.text) message->content = *r.text;
    if (r.text || r.touch) message->updated_at = now;
    ours.insert(r.id);
  }
  return ours;
}

absl::StatusOr<std::optional<MessageRecord>> InMemoryMessageStore::FinishReply(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& id, int64_t owner, const std::string& text,
    MessageStatus status, const std::string& model, absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kFinishReply);
      !error.ok()) {
    return error;
  }
  StoredConversation* conversation = Find(user_id, conversation_id);
  if (conversation == nullptr) return std::optional<MessageRecord>();
  MessageRecord* message = FindMessage(conversation->messages, id);
  auto owned = conversation->owners.find(Canonical(id));
  if (message == nullptr || message->status != MessageStatus::kInProgress ||
      owned == conversation->owners.end() || owned->second != owner) {
    return std::optional<MessageRecord>();
  }
  conversation->owners.erase(owned);
  message->content = text;
  message->status = status;
  message->model = model;
  message->updated_at = now;
  return std::optional<MessageRecord>(Placed(*conversation, *message));
}

absl::StatusOr<MessageRecord> InMemoryMessageStore::CancelReply(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& id, absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (absl::Status error = TakeInjectedError(Method::kCancelReply);
      !error.ok()) {
    return error;
  }
  StoredConversation* conversation = Find(user_id, conversation_id);
  MessageRecord* message = conversation == nullptr
                               ? nullptr
                               : FindMessage(conversation->messages, id);
  if (message == nullptr) return MessageNotFound();
  if (message->status == MessageStatus::kInProgress) {
    message->status = MessageStatus::kIncomplete;
    message->updated_at = now;
    conversation->owners.erase(message->id);
  }
  return Placed(*conversation, *message);
}

}  // namespace chat::message
