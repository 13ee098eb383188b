#include "services/message/transfer_handler.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/proto_metadata.h"
#include "common/proto_time.h"
#include "services/message/message_proto.h"

namespace chat::message {
namespace {

using grpc::Status;

// A chunk of an export stays far below the 16 MiB a gateway takes from a
// service (MaxRecvMsgBytes), whatever the messages hold: a message is at
// most 100,000 characters (400 KB) plus its metadata (33 KB).
constexpr size_t kChunkBytes = 4 << 20;

void ToProto(const ConversationRecord& c, chat::v1::Conversation* out) {
  out->set_id(c.id);
  out->set_title(c.title);
  MetadataToProto(c.metadata, out->mutable_metadata());
  out->set_archived(c.archived);
  out->set_pinned(c.pinned);
  out->set_message_count(static_cast<int32_t>(c.message_count));
  if (c.last_message_at)
    SetTimestamp(*c.last_message_at, out->mutable_last_message_at());
  out->set_active_leaf_id(c.active_leaf_id);
  SetTimestamp(c.created_at, out->mutable_created_at());
  SetTimestamp(c.updated_at, out->mutable_updated_at());
}

std::optional<absl::Time> TimeOf(bool present,
                                 const google::protobuf::Timestamp& t) {
  if (!present) return std::nullopt;
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

ImportedConversation FromProto(const chat::v1::Conversation& c) {
  return {
      .id = c.id(),
      .title = c.title(),
      .metadata = MetadataFromProto(c.metadata()),
      .archived = c.archived(),
      .pinned = c.pinned(),
      .created_at = TimeOf(c.has_created_at(), c.created_at()),
      .updated_at = TimeOf(c.has_updated_at(), c.updated_at()),
      .active_leaf_id = c.active_leaf_id(),
  };
}

ImportedMessage FromProto(const chat::v1::Message& m) {
  return {
      .id = m.id(),
      .parent_id = m.parent_id(),
      .role = m.role(),
      .content = m.content(),
      .status = m.status(),
      .model = m.model(),
      .metadata = MetadataFromProto(m.metadata()),
      .created_at = TimeOf(m.has_created_at(), m.created_at()),
      .updated_at = TimeOf(m.has_updated_at(), m.updated_at()),
  };
}

class StreamExportSink final : public ExportSink {
 public:
  explicit StreamExportSink(grpc::ServerWriter<chat::v1::ExportChunk>* writer)
      : writer_(writer) {}

  bool Conversation(const ConversationRecord& conversation) override {
    chat::v1::ExportChunk chunk;
    ToProto(conversation, chunk.mutable_conversation());
    return writer_->Write(chunk);
  }

  bool Messages(const std::vector<MessageRecord>& messages) override {
    chat::v1::ExportChunk chunk;
    size_t bytes = 0;
    for (const MessageRecord& m : messages) {
      ToProto(m, chunk.add_messages());
      bytes += chunk.messages(chunk.messages_size() - 1).ByteSizeLong();
      if (bytes >= kChunkBytes) {
        if (!writer_->Write(chunk)) return false;
        chunk.Clear();
        bytes = 0;
      }
    }
    return chunk.messages().empty() || writer_->Write(chunk);
  }

 private:
  grpc::ServerWriter<chat::v1::ExportChunk>* writer_;
};

// The items of the client's stream, up to the request marked `end`.
class StreamImportSource final : public ImportSource {
 public:
  StreamImportSource(grpc::ServerContext* context,
                     grpc::ServerReader<chat::v1::ImportRequest>* reader)
      : context_(context), reader_(reader) {}

  absl::StatusOr<std::optional<ImportItem>> Next() override {
    while (next_ >= request_.items_size()) {
      if (ended_) {
        if (reader_->Read(&request_)) {
          return absl::InvalidArgumentError(
              "a request follows the one marked end; nothing was stored");
        }
        return std::nullopt;
      }
      if (!reader_->Read(&request_)) {
        if (context_->IsCancelled()) {
          return absl::CancelledError(
              "the upload was cancelled; nothing was stored");
        }
        return absl::InvalidArgumentError(
            "the upload ended without a request marked end; nothing was "
            "stored");
      }
      next_ = 0;
      ended_ = request_.end();
    }
    const chat::v1::ImportItem& item = request_.items(next_++);
    switch (item.item_case()) {
      case chat::v1::ImportItem::kConversation:
        return ImportItem{item.source(), FromProto(item.conversation())};
      case chat::v1::ImportItem::kMessage:
        return ImportItem{item.source(), FromProto(item.message())};
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            item.source(), ": an item holds a conversation or a message"));
    }
  }

 private:
  grpc::ServerContext* context_;
  grpc::ServerReader<chat::v1::ImportRequest>* reader_;
  chat::v1::ImportRequest request_;
  int next_ = 0;
  bool ended_ = false;
};

}  // namespace

Status ExportServiceImpl::Export(
    grpc::ServerContext* context, const chat::v1::ExportRequest* /*request*/,
    grpc::ServerWriter<chat::v1::ExportChunk>* writer) {
  return ForCaller(*callers_, *context, [&](const std::string& user) {
    StreamExportSink sink(writer);
    return transfers_->Export(user, sink);
  });
}

Status ExportServiceImpl::Import(
    grpc::ServerContext* context,
    grpc::ServerReader<chat::v1::ImportRequest>* reader,
    chat::v1::ImportResponse* response) {
  return ForCaller(*callers_, *context,
                   [&](const std::string& user) -> absl::Status {
                     StreamImportSource source(context, reader);
                     absl::StatusOr<Transfers::Counts> counts =
                         transfers_->Import(user, source);
                     if (!counts.ok()) return counts.status();
                     response->set_imported(counts->imported);
                     response->set_skipped(counts->skipped);
                     return absl::OkStatus();
                   });
}

}  // namespace chat::message
