#ifndef CHAT_SERVICES_MESSAGE_MULTIPLEXED_STREAMS_H_
#define CHAT_SERVICES_MESSAGE_MULTIPLEXED_STREAMS_H_

// One Multiplex call of chat.v1.EventStreams: many event streams (Chat,
// Regenerate, StreamReply) on one call, so that a reply in progress holds
// no gRPC call of its own. Each open request starts a stream on the pool;
// the events of all streams go into one queue, written in batches one
// write at a time, in each stream's order; a close request, or the end of
// the call, stops a stream's events (never its reply). No thread waits for
// the client.

#include <functional>
#include <memory>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "chat/v1/event_streams.grpc.pb.h"
#include "common/thread_pool.h"
#include "grpcpp/grpcpp.h"
#include "services/message/chat.h"
#include "services/message/multiplexed_call.h"

namespace chat::message {

class MultiplexedCalls;

class MultiplexedStreams final
    : public grpc::ServerBidiReactor<chat::v1::MultiplexRequest,
                                     chat::v1::MultiplexResponse>,
      private MultiplexedCall::Writer {
 public:
  // Starts one stream, on the pool: resolves its caller and starts its
  // events into `sink`. An error status ends the stream before any event.
  using Starter = std::function<grpc::Status(
      const chat::v1::OpenEventStream& open, std::shared_ptr<ChatSink> sink)>;

  using Limits = MultiplexedCall::Limits;

  // `work`, `start` and `calls` must outlive the call.
  MultiplexedStreams(Executor* work, const Starter* start, Limits limits,
                     MultiplexedCalls* calls);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  void StartBatch(const chat::v1::MultiplexResponse* batch) override {
    StartWrite(batch);
  }
  void FinishCall(const grpc::Status& status) override { Finish(status); }

  std::shared_ptr<MultiplexedCall> call_;
  MultiplexedCalls* calls_;
  Executor* work_;
  const Starter* start_;
  chat::v1::MultiplexRequest request_;
};

// The Multiplex calls in progress, so that a stopping service can end them:
// after Drain, each call refuses new streams (UNAVAILABLE, which the
// gateway's client retries elsewhere) and finishes once its last stream
// has ended, instead of holding the shutdown until its deadline.
class MultiplexedCalls {
 public:
  void Drain();

 private:
  friend class MultiplexedStreams;
  void Add(const std::shared_ptr<MultiplexedCall>& call);
  void Remove(const MultiplexedCall* call);

  std::mutex mutex_;
  bool draining_ = false;
  absl::flat_hash_map<const MultiplexedCall*, std::weak_ptr<MultiplexedCall>>
      calls_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MULTIPLEXED_STREAMS_H_
