#ifndef CHAT_SERVICES_MESSAGE_MULTIPLEXED_STREAMS_H_
#define CHAT_SERVICES_MESSAGE_MULTIPLEXED_STREAMS_H_

// One Multiplex call of chat.v1.EventStreams: many event streams (Chat,
// Regenerate, StreamReply) on one call, so that a reply in progress holds
// no gRPC call of its own. Each open request starts a stream on the pool;
// the events of all streams go into one queue, written in batches one
// write at a time, in each stream's order; a close request, or the end of
// the call, stops a stream's events (never its reply). No thread waits for
// the client.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "chat/v1/event_streams.grpc.pb.h"
#include "common/thread_pool.h"
#include "grpcpp/grpcpp.h"
#include "services/message/chat.h"

namespace chat::message {

class MultiplexedCalls;

class MultiplexedStreams final
    : public grpc::ServerBidiReactor<chat::v1::MultiplexRequest,
                                     chat::v1::MultiplexResponse> {
 public:
  class Call;  // the state that the call's streams share
  // Starts one stream, on the pool: resolves its caller and starts its
  // events into `sink`. An error status ends the stream before any event.
  using Starter = std::function<grpc::Status(
      const chat::v1::OpenEventStream& open, std::shared_ptr<ChatSink> sink)>;

  struct Limits {
    // Events in one write at most, and bytes (a write holds at least one
    // event): far below what the gateway takes in one message (16 MiB).
    int batch_events = 256;
    size_t batch_bytes = size_t{1} << 20;
    // Events that wait for the client, in bytes; past it the call ends
    // RESOURCE_EXHAUSTED (a client that no longer reads).
    size_t queued_bytes = size_t{64} << 20;
  };

  // `work`, `start` and `calls` must outlive the call.
  MultiplexedStreams(Executor* work, const Starter* start, Limits limits,
                     MultiplexedCalls* calls);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  class Sink;

  std::shared_ptr<Call> call_;
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
  void Add(const std::shared_ptr<MultiplexedStreams::Call>& call);
  void Remove(const MultiplexedStreams::Call* call);

  std::mutex mutex_;
  bool draining_ = false;
  absl::flat_hash_map<const MultiplexedStreams::Call*,
                      std::weak_ptr<MultiplexedStreams::Call>>
      calls_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MULTIPLEXED_STREAMS_H_
