#ifndef CHAT_SERVICES_MESSAGE_EVENT_STREAMS_HANDLER_H_
#define CHAT_SERVICES_MESSAGE_EVENT_STREAMS_HANDLER_H_

// chat.v1.EventStreams over gRPC: the gateway's event streams, many on one
// Multiplex call (services/message/multiplexed_streams.h). Each stream is
// authorized by its own token and started as its own call of Chat,
// Regenerate or StreamReply would be (StartEventStream).

#include "chat/v1/event_streams.grpc.pb.h"
#include "common/caller.h"
#include "common/thread_pool.h"
#include "services/message/chat.h"
#include "services/message/multiplexed_streams.h"

namespace chat::message {

class EventStreamsImpl final : public chat::v1::EventStreams::CallbackService {
 public:
  // Streams start on `work`, which must outlive the calls.
  EventStreamsImpl(Chats* chats, const CallerResolver* callers, Executor* work,
                   MultiplexedStreams::Limits limits = {});

  grpc::ServerBidiReactor<chat::v1::MultiplexRequest,
                          chat::v1::MultiplexResponse>*
  Multiplex(grpc::CallbackServerContext* context) override;

  // The service is stopping: each call ends after its last stream
  // (MultiplexedCalls::Drain).
  void Drain() { calls_.Drain(); }

 private:
  grpc::Status Start(const chat::v1::OpenEventStream& open,
                     std::shared_ptr<ChatSink> sink);

  Chats* chats_;
  const CallerResolver* callers_;
  Executor* work_;
  MultiplexedStreams::Limits limits_;
  MultiplexedStreams::Starter start_;
  MultiplexedCalls calls_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_EVENT_STREAMS_HANDLER_H_
