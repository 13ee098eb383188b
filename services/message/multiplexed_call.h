#ifndef CHAT_SERVICES_MESSAGE_MULTIPLEXED_CALL_H_
#define CHAT_SERVICES_MESSAGE_MULTIPLEXED_CALL_H_

// The state that the streams of one Multiplex call share
// (services/message/multiplexed_streams.h): the open streams and their
// sinks, and one queue of their events, written in batches one write at a
// time. The sinks may outlive the call (a reply ends after its client's
// call); once the call is over their events are refused. Every method may
// be called from any thread; the writer is called outside the lock.

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "chat/v1/event_streams.pb.h"
#include "grpcpp/support/status.h"
#include "services/message/chat_event_sink.h"

namespace chat::message {

class MultiplexedCall : public std::enable_shared_from_this<MultiplexedCall> {
 public:
  // The call's end of gRPC (the reactor): one batch at a time, WriteDone
  // reporting each, and Finish once.
  class Writer {
   public:
    virtual ~Writer() = default;
    virtual void StartBatch(const chat::v1::MultiplexResponse* batch) = 0;
    virtual void FinishCall(const grpc::Status& status) = 0;
  };

  struct Limits {
    // Events in one write at most, and bytes (a write holds at least one
    // event): far below what the gateway takes in one message (16 MiB).
    int batch_events = 256;
    size_t batch_bytes = size_t{1} << 20;
    // Events that wait for the client, in bytes; past it the call ends
    // RESOURCE_EXHAUSTED (a client that no longer reads).
    size_t queued_bytes = size_t{64} << 20;
  };

  class Sink;

  MultiplexedCall(Writer* writer, Limits limits)
      : writer_(writer), limits_(limits) {}

  // A new stream numbered `id`; null when the number is in use. After the
  // call ended, a sink that is closed already.
  std::shared_ptr<Sink> Open(uint64_t id, std::string request_id);
  // The client of stream `id` is gone.
  void Close(uint64_t id);
  // Queues an event of `sink`'s stream; false once the stream is closed.
  bool Push(Sink& sink, chat::v1::ChatEvent event, bool last);
  // Ends `sink`'s stream, before its first event, with `status`.
  void Fail(Sink& sink, const grpc::Status& status);
  // Ends the call with `status` (once no write is under way): every stream
  // is closed and what waits is dropped.
  void End(const grpc::Status& status);
  // The batch given to StartBatch was written (ok) or not.
  void WriteDone(bool ok);
  // The writer is gone: nothing more is written.
  void Detach();
  // New streams are refused; the call finishes after its last stream.
  void Drain();
  bool Draining();

 private:
  // A writer call decided under the lock and made after it, so that gRPC
  // never runs a reaction while the lock is held.
  struct Next {
    Writer* writer = nullptr;
    bool write = false;
    bool finish = false;
    grpc::Status status;
  };

  // With no write under way: the next write, or the end when it is due.
  Next AfterWrite();
  void Do(const Next& next);
  void Enqueue(chat::v1::StreamEvent event);
  void CloseAll();
  void EndLocked(const grpc::Status& status);

  std::mutex mutex_;
  Writer* writer_;  // null once the call is over
  const Limits limits_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Sink>> streams_;
  std::deque<chat::v1::StreamEvent> queue_;
  size_t queued_bytes_ = 0;
  chat::v1::MultiplexResponse current_;  // being written
  bool writing_ = false;
  bool draining_ = false;
  bool ending_ = false;
  bool finished_ = false;
  grpc::Status end_status_;
};

// One stream's events, as its Chats call sends them.
class MultiplexedCall::Sink final : public ChatEventSink {
 public:
  Sink(std::shared_ptr<MultiplexedCall> call, uint64_t id,
       std::string request_id)
      : ChatEventSink(std::move(request_id)), call_(std::move(call)), id_(id) {}

  uint64_t id() const { return id_; }
  bool Cancelled() override { return closed_.load(); }

 private:
  friend class MultiplexedCall;

  bool Emit(chat::v1::ChatEvent event, bool last) override {
    return call_->Push(*this, std::move(event), last);
  }

  const std::shared_ptr<MultiplexedCall> call_;
  const uint64_t id_;
  std::atomic<bool> closed_{false};  // written under the call's lock
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MULTIPLEXED_CALL_H_
