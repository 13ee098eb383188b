#include "services/message/transfers.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/text_field.h"

namespace chat::message {
namespace {

constexpr size_t kMaxTitle = 255;
constexpr size_t kMaxContent = 100000;
constexpr size_t kMaxModel = 255;
// An untitled import is named like a new conversation, and stays
// renameable by its first reply.
constexpr char kDefaultTitle[] = "New Chat";

// How long a caller waits before trying an export or import again.
constexpr absl::Duration kRetryAfter = absl::Seconds(5);

// Times with four-digit years: plausible for a message, and spelled the
// same way by RFC 3339 and PostgreSQL.
bool InRange(absl::Time t) {
  static const absl::Time kFirst = absl::FromCivil(
      absl::CivilSecond(1900, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  static const absl::Time kLast = absl::FromCivil(
      absl::CivilSecond(9999, 12, 31, 23, 59, 59), absl::UTCTimeZone());
  return t >= kFirst && t <= kLast;
}

void ValidateTime(absl::string_view field, const std::optional<absl::Time>& t,
                  FieldViolations& violations) {
  if (t && !InRange(*t))
    violations.Add(field, "must be between the years 1900 and 9999");
}

absl::Status BadItem(const ImportItem& item, absl::string_view what,
                     const FieldViolations& violations) {
  return ErrorWithViolations(absl::StatusCode::kInvalidArgument,
                             absl::StrCat(item.source, ": ", what),
                             violations.list());
}

// One import's walk over its items: validates each, batches the messages of
// the current conversation, and ends each conversation with its counts.
class ImportRun {
 public:
  ImportRun(ImportWriter& writer, absl::Time now, int batch)
      : writer_(writer), now_(now), batch_(std::max(1, batch)) {}

  absl::Status Take(const ImportItem& item) {
    if (const auto* c = std::get_if<ImportedConversation>(&item.item))
      return TakeConversation(item, *c);
    return TakeMessage(item, std::get<ImportedMessage>(item.item));
  }

  // Ends the last conversation.
  absl::Status Finish() { return EndConversation(); }

  Transfers::Counts counts() const { return counts_; }

 private:
  absl::Status TakeConversation(const ImportItem& item,
                                const ImportedConversation& c) {
    RETURN_IF_ERROR(EndConversation());
    FieldViolations violations;
    if (!IsUuid(c.id)) violations.Add("conversation.id", "must be a UUID");
    if (!c.title.empty())
      ValidateText("conversation.title", c.title, kMaxTitle, violations);
    ValidateMetadata("conversation.metadata", c.metadata, violations);
    ValidateTime("conversation.created_at", c.created_at, violations);
    ValidateTime("conversation.updated_at", c.updated_at, violations);
    if (!c.active_leaf_id.empty() && !IsUuid(c.active_leaf_id))
      violations.Add("conversation.active_leaf_id", "must be a UUID");
    if (!violations.empty())
      return BadItem(item, "invalid conversation", violations);

    ConversationRecord record{
        .id = c.id,
        .title = c.title.empty() ? kDefaultTitle : c.title,
        .untitled = c.title.empty(),
        .metadata = c.metadata,
        .archived = c.archived,
        .pinned = c.pinned,
        .active_leaf_id = c.active_leaf_id,
        .created_at = c.created_at.value_or(now_),
    };
    record.updated_at =
        std::max(record.created_at, c.updated_at.value_or(record.created_at));
    ASSIGN_OR_RETURN(bool fresh, writer_.Begin(record));
    current_ = std::move(record);
    current_source_ = item.source;
    storing_ = fresh;
    ++(fresh ? counts_.imported : counts_.skipped);
    return absl::OkStatus();
  }

  absl::Status TakeMessage(const ImportItem& item, const ImportedMessage& m) {
    if (!current_) {
      FieldViolations none;
      return BadItem(item, "a message before any conversation", none);
    }
    FieldViolations violations;
    if (!IsUuid(m.id)) {
      violations.Add("message.id", "must be a UUID");
    } else if (ids_.contains(m.id)) {
      violations.Add("message.id",
                     "repeats an earlier message of the conversation");
    }
    if (!m.parent_id.empty() && !ids_.contains(m.parent_id))
      violations.Add("message.parent_id",
                     "must be an earlier message of the conversation");
    std::optional<Role> role = ParseRole(m.role);
    if (!role)
      violations.Add("message.role", "must be user, assistant or system");
    ValidateText("message.content", m.content, kMaxContent, violations);
    std::optional<MessageStatus> status =
        m.status.empty() ? MessageStatus::kComplete : ParseStatus(m.status);
    if (!status)
      violations.Add("message.status",
                     "must be complete, in_progress, incomplete or failed");
    if (m.model.size() > kMaxModel)
      violations.Add("message.model", "must be at most 255 bytes");
    ValidateMetadata("message.metadata", m.metadata, violations);
    ValidateTime("message.created_at", m.created_at, violations);
    ValidateTime("message.updated_at", m.updated_at, violations);
    if (!violations.empty())
      return BadItem(item, "invalid message", violations);

    ids_.insert(m.id);
    last_id_ = m.id;
    MessageRecord record{
        .id = m.id,
        .conversation_id = current_->id,
        .parent_id = m.parent_id,
        .seq = ++seq_,
        .role = *role,
        .content = m.content,
        // Nothing will finish a reply that was in progress when exported.
        .status = *status == MessageStatus::kInProgress
                      ? MessageStatus::kIncomplete
                      : *status,
        .model = m.model,
        .metadata = m.metadata,
        .created_at = m.created_at.value_or(current_->created_at),
    };
    record.updated_at =
        std::max(record.created_at, m.updated_at.value_or(record.created_at));
    last_message_at_ = std::max(last_message_at_.value_or(record.created_at),
                                record.created_at);
    if (!storing_) return absl::OkStatus();
    pending_.push_back(std::move(record));
    if (static_cast<int>(pending_.size()) >= batch_) return Flush();
    return absl::OkStatus();
  }

  absl::Status Flush() {
    if (pending_.empty()) return absl::OkStatus();
    RETURN_IF_ERROR(writer_.Add(pending_));
    pending_.clear();
    return absl::OkStatus();
  }

  absl::Status EndConversation() {
    if (!current_) return absl::OkStatus();
    ConversationRecord done = *std::move(current_);
    current_.reset();
    if (!done.active_leaf_id.empty() && !ids_.contains(done.active_leaf_id)) {
      FieldViolations violations;
      violations.Add("conversation.active_leaf_id",
                     "must be a message of the conversation");
      return ErrorWithViolations(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat(current_source_, ": invalid conversation"),
          violations.list());
    }
    if (done.active_leaf_id.empty()) done.active_leaf_id = last_id_;
    done.message_count = seq_;
    done.last_message_at = last_message_at_;
    if (last_message_at_)
      done.updated_at = std::max(done.updated_at, *last_message_at_);
    absl::Status status = storing_ ? Flush() : absl::OkStatus();
    if (status.ok() && storing_) status = writer_.End(done);
    ids_.clear();
    last_id_.clear();
    last_message_at_.reset();
    seq_ = 0;
    return status;
  }

  ImportWriter& writer_;
  const absl::Time now_;
  const int batch_;
  Transfers::Counts counts_;
  // The conversation being read, and whether it is being stored (false:
  // the user has it already, its messages are checked and dropped).
  std::optional<ConversationRecord> current_;
  std::string current_source_;
  bool storing_ = false;
  absl::flat_hash_set<std::string> ids_;
  std::string last_id_;
  int64_t seq_ = 0;
  std::optional<absl::Time> last_message_at_;
  std::vector<MessageRecord> pending_;
};

}  // namespace

bool TransferSlots::TryTake() {
  int free = free_.load();
  while (free > 0) {
    if (free_.compare_exchange_weak(free, free - 1)) return true;
  }
  return false;
}

void TransferSlots::Give() { free_.fetch_add(1); }

absl::Status Transfers::WithSlot(const std::function<absl::Status()>& run) {
  if (!slots_->TryTake()) {
    return ResourceExhaustedRetryAfter(
        "the service runs as many exports and imports as it can; retry later",
        kRetryAfter);
  }
  absl::Status status = run();
  slots_->Give();
  return status;
}

absl::Status Transfers::Export(const std::string& user_id, ExportSink& sink) {
  return WithSlot([&] {
    return store_->Export(user_id, options_.per_user, options_.batch, sink);
  });
}

absl::StatusOr<Transfers::Counts> Transfers::Import(const std::string& user_id,
                                                    ImportSource& source) {
  Counts counts;
  RETURN_IF_ERROR(WithSlot([&] {
    return store_->Import(
        user_id, options_.per_user, [&](ImportWriter& writer) -> absl::Status {
          ImportRun run(writer, clock_->Now(), options_.batch);
          while (true) {
            ASSIGN_OR_RETURN(std::optional<ImportItem> item, source.Next());
            if (!item) break;
            RETURN_IF_ERROR(run.Take(*item));
          }
          RETURN_IF_ERROR(run.Finish());
          counts = run.counts();
          return absl::OkStatus();
        });
  }));
  return counts;
}

}  // namespace chat::message
