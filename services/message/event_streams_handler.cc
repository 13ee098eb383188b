#include "services/message/event_streams_handler.h"

#include <utility>

#include "common/grpc_status.h"
#include "services/message/message_handler.h"

namespace chat::message {

EventStreamsImpl::EventStreamsImpl(Chats* chats, const CallerResolver* callers,
                                   Executor* work,
                                   MultiplexedStreams::Limits limits)
    : chats_(chats),
      callers_(callers),
      work_(work),
      limits_(limits),
      start_([this](const chat::v1::OpenEventStream& open,
                    std::shared_ptr<ChatSink> sink) {
        return Start(open, std::move(sink));
      }) {}

grpc::ServerBidiReactor<chat::v1::MultiplexRequest,
                        chat::v1::MultiplexResponse>*
EventStreamsImpl::Multiplex(grpc::CallbackServerContext*) {
  return new MultiplexedStreams(work_, &start_, limits_, &calls_);
}

grpc::Status EventStreamsImpl::Start(const chat::v1::OpenEventStream& open,
                                     std::shared_ptr<ChatSink> sink) {
  absl::StatusOr<std::string> user = callers_->UserIdOf(open.authorization());
  if (!user.ok()) return ToGrpcStatus(user.status());
  switch (open.call_case()) {
    case chat::v1::OpenEventStream::kChat:
      return ToGrpcStatus(
          StartEventStream(*chats_, *user, open.chat(), std::move(sink)));
    case chat::v1::OpenEventStream::kRegenerate:
      return ToGrpcStatus(
          StartEventStream(*chats_, *user, open.regenerate(), std::move(sink)));
    case chat::v1::OpenEventStream::kStreamReply:
      return ToGrpcStatus(StartEventStream(*chats_, *user, open.stream_reply(),
                                           std::move(sink)));
    case chat::v1::OpenEventStream::CALL_NOT_SET:
      break;
  }
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      "the stream names no call");
}

}  // namespace chat::message
