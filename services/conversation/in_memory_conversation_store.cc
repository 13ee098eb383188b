#include "services/conversation/in_memory_conversation_store.h"

#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <tuple>

#include "absl/strings/ascii.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/utf8.h"

namespace chat::conversation {
namespace {

absl::Status NotFound() {
  return absl::NotFoundError("conversation not found");
}

// A uuid column compares and matches ids whatever their case.
std::string CanonicalId(const std::string& id) {
  return absl::AsciiStrToLower(id);
}

// What PostgreSQL receives of a text parameter: libpq sends text parameters
// as C strings, so anything after a NUL is silently dropped (checked with
// libpqxx 7 and PostgreSQL 15). The domain keeps NULs out of what it
// stores; this keeps the store as blind to them as the real one.
std::string PgText(const std::string& text) {
  return text.substr(0, text.find('\0'));
}

// Appends code point c as UTF-8.
void AppendUtf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

// PostgreSQL's lower() under a libc UTF-8 collation: each code point through
// towlower of that locale. Bytes that are not UTF-8 stay as they are.
std::string Lower(absl::string_view text) {
  static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", nullptr);
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const size_t length = Utf8SequenceLength(text);
    if (length == 0) {
      out.push_back(text.front());
      text.remove_prefix(1);
      continue;
    }
    char32_t c = static_cast<unsigned char>(text[0]);
    if (length > 1) {
      c &= 0xFF >> (length + 1);
      for (size_t i = 1; i < length; ++i) {
        c = (c << 6) | (static_cast<unsigned char>(text[i]) & 0x3F);
      }
    }
    if (utf8 != nullptr) {
      c = static_cast<char32_t>(towlower_l(static_cast<wint_t>(c), utf8));
    } else if (c < 0x80) {
      c = static_cast<char32_t>(absl::ascii_tolower(static_cast<char>(c)));
    }
    AppendUtf8(c, out);
    text.remove_prefix(length);
  }
  return out;
}

// The newest leaf under `id` (the newest child at each step; newest is
// created last), as newest_leaf_under finds it, or nullopt when `id` is not
// among `messages` (in creation order).
template <typename Message>
std::optional<std::string> NewestLeafUnder(const std::vector<Message>& messages,
                                           const std::string& id) {
  if (std::none_of(messages.begin(), messages.end(),
                   [&](const Message& m) { return m.id == id; })) {
    return std::nullopt;
  }
  std::string leaf = id;
  for (;;) {
    auto newest_child =
        std::find_if(messages.rbegin(), messages.rend(),
                     [&](const Message& m) { return m.parent_id == leaf; });
    if (newest_child == messages.rend()) return leaf;
    leaf = newest_child->id;
  }
}

// The listing order, compared as PostgreSQL compares the row
// (pinned, updated_at, id).
std::tuple<bool, int64_t, std::string> PositionOf(const ConversationRecord& c) {
  return {c.pinned, absl::ToUnixMicros(c.updated_at), CanonicalId(c.id)};
}

}  // namespace

absl::StatusOr<ConversationRecord> InMemoryConversationStore::Create(
    const std::string& user_id, const ConversationRecord& conversation,
    const std::optional<IdempotencyKey>& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string user = CanonicalId(user_id);
  const absl::Time now = ToMicroseconds(conversation.created_at);
  if (key) {
    // Keys older than the window are forgotten first.
    for (auto it = keys_.begin(); it != keys_.end();) {
      if (it->first.first == user &&
          it->second.created_at <= now - kIdempotencyWindow) {
        it = keys_.erase(it);
      } else {
        ++it;
      }
    }
    auto [it, inserted] = keys_.try_emplace(
        {user, key->key},
        StoredKey{key->request_hash, CanonicalId(conversation.id), now});
    if (!inserted) {
      if (it->second.request_hash != key->request_hash) {
        return ErrorWithViolations(
            absl::StatusCode::kAlreadyExists,
            "this Idempotency-Key was already used for another request",
            {{"idempotency_key", "was already used for another request"}});
      }
      auto first = conversations_.find({user, it->second.resource_id});
      if (first == conversations_.end()) return NotFound();
      return first->second;
    }
  }
  ConversationRecord stored = conversation;
  stored.id = CanonicalId(conversation.id);
  stored.title = PgText(conversation.title);
  stored.message_count = 0;
  stored.last_message_at.reset();
  stored.archived = false;
  stored.pinned = false;
  stored.active_leaf_id.clear();
  stored.created_at = now;
  stored.updated_at = now;
  auto [it, inserted] = conversations_.try_emplace({user, stored.id}, stored);
  if (!inserted) {
    // The transaction rolls back, the key's claim with it.
    if (key) keys_.erase({user, key->key});
    return absl::AlreadyExistsError("already exists");
  }
  return it->second;
}

absl::StatusOr<ConversationRecord> InMemoryConversationStore::Get(
    const std::string& user_id, const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = conversations_.find({CanonicalId(user_id), CanonicalId(id)});
  if (it == conversations_.end()) return NotFound();
  return it->second;
}

absl::StatusOr<std::vector<ConversationRecord>> InMemoryConversationStore::List(
    const std::string& user_id, bool archived, const std::string& query,
    const std::optional<ListPosition>& after, int limit) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string user = CanonicalId(user_id);
  const std::string needle = Lower(PgText(query));
  std::optional<std::tuple<bool, int64_t, std::string>> bound;
  if (after) {
    bound.emplace(after->pinned, after->updated_at_micros,
                  CanonicalId(after->id));
  }
  std::vector<ConversationRecord> rows;
  for (auto it = conversations_.lower_bound({user, ""});
       it != conversations_.end() && it->first.first == user; ++it) {
    const ConversationRecord& c = it->second;
    if (c.archived != archived) continue;
    if (!needle.empty() && Lower(c.title).find(needle) == std::string::npos) {
      continue;
    }
    if (bound && !(PositionOf(c) < *bound)) continue;
    rows.push_back(c);
  }
  std::sort(rows.begin(), rows.end(),
            [](const ConversationRecord& a, const ConversationRecord& b) {
              return PositionOf(a) > PositionOf(b);
            });
  if (limit >= 0 && rows.size() > static_cast<size_t>(limit)) {
    rows.resize(limit);
  }
  return rows;
}

absl::StatusOr<ConversationRecord> InMemoryConversationStore::Update(
    const std::string& user_id, const std::string& id,
    const ConversationChange& change, absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  const Key key{CanonicalId(user_id), CanonicalId(id)};
  auto it = conversations_.find(key);
  if (it == conversations_.end()) return NotFound();
  // Changed on a copy: a message that is not found changes nothing, as the
  // transaction rolls back.
  ConversationRecord c = it->second;
  if (change.title) {
    c.title = PgText(*change.title);
    c.untitled = false;
  }
  if (change.metadata) c.metadata = *change.metadata;
  if (change.archived) c.archived = *change.archived;
  if (change.pinned) c.pinned = *change.pinned;
  c.updated_at = ToMicroseconds(now);
  if (change.active_message_id) {
    auto messages = messages_.find(key);
    std::optional<std::string> leaf;
    if (messages != messages_.end()) {
      leaf = NewestLeafUnder(messages->second,
                             CanonicalId(PgText(*change.active_message_id)));
    }
    if (!leaf) return absl::NotFoundError("message not found");
    c.active_leaf_id = *leaf;
  }
  it->second = c;
  return c;
}

absl::Status InMemoryConversationStore::Delete(const std::string& user_id,
                                               const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  const Key key{CanonicalId(user_id), CanonicalId(id)};
  if (conversations_.erase(key) == 0) return NotFound();
  messages_.erase(key);  // ON DELETE CASCADE
  return absl::OkStatus();
}

absl::Status InMemoryConversationStore::DeleteAll(const std::string& user_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string user = CanonicalId(user_id);
  for (auto it = conversations_.lower_bound({user, ""});
       it != conversations_.end() && it->first.first == user;) {
    it = conversations_.erase(it);
  }
  for (auto it = messages_.lower_bound({user, ""});
       it != messages_.end() && it->first.first == user;) {
    it = messages_.erase(it);
  }
  return absl::OkStatus();
}

size_t InMemoryConversationStore::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return conversations_.size();
}

absl::Status InMemoryConversationStore::AddMessage(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& id, const std::string& parent_id, absl::Time at) {
  std::lock_guard<std::mutex> lock(mutex_);
  const Key key{CanonicalId(user_id), CanonicalId(conversation_id)};
  auto conversation = conversations_.find(key);
  if (conversation == conversations_.end()) return NotFound();
  std::vector<StoredMessage>& messages = messages_[key];
  StoredMessage message{CanonicalId(id), CanonicalId(parent_id)};
  auto holds = [&](const std::string& wanted) {
    return std::any_of(messages.begin(), messages.end(),
                       [&](const StoredMessage& m) { return m.id == wanted; });
  };
  if (!message.parent_id.empty() && !holds(message.parent_id)) {
    return absl::NotFoundError("message not found");
  }
  if (holds(message.id)) return absl::AlreadyExistsError("already exists");
  messages.push_back(message);

  ConversationRecord& c = conversation->second;
  c.active_leaf_id = message.id;
  ++c.message_count;
  const absl::Time time = ToMicroseconds(at);
  c.last_message_at =
      c.last_message_at ? std::max(*c.last_message_at, time) : time;
  c.updated_at = std::max(c.updated_at, time);
  return absl::OkStatus();
}

}  // namespace chat::conversation
