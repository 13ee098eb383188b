#ifndef CHAT_SERVICES_MESSAGE_CHAT_EVENT_STREAM_H_
#define CHAT_SERVICES_MESSAGE_CHAT_EVENT_STREAM_H_

// One server-streaming call of chat events (Chat, Regenerate, StreamReply)
// on the gRPC callback API: events are queued from any thread without
// blocking and written one at a time as the client takes them; no thread
// waits for the client. The call ends after its last event, or at once with
// an error before the first.

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>

#include "chat/v1/message.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace chat::message {

class ChatEventStream final
    : public grpc::ServerWriteReactor<chat::v1::ChatEvent> {
 public:
  // The reply's end of the call. Held by the reply, which may outlive the
  // call; once the call is over, writes are refused.
  class Writer {
   public:
    // Queues `event`; false once the client is gone. `last`: the call ends
    // after it.
    bool Write(chat::v1::ChatEvent event, bool last);
    bool Cancelled() const { return cancelled_.load(); }
    // Ends the call with `status` and no event (an error before the
    // stream starts).
    void Fail(const grpc::Status& status);
    // The handler has started the stream (or failed it): until then the
    // call cannot end, so the request it reads stays alive.
    void Started();

   private:
    friend class ChatEventStream;
    struct Next;  // what to do once the lock is released

    Next AfterWrite(std::unique_lock<std::mutex>& lock);
    void Do(const Next& next);
    void WriteDone(bool ok);
    void Cancel();
    void Detach();

    std::mutex mutex_;
    ChatEventStream* reactor_ = nullptr;  // null once the call is over
    std::deque<chat::v1::ChatEvent> queue_;
    chat::v1::ChatEvent current_;  // being written
    bool writing_ = false;
    bool last_queued_ = false;
    bool starting_ = true;
    bool finished_ = false;
    grpc::Status finish_status_;
    std::atomic<bool> cancelled_{false};
  };

  ChatEventStream();

  const std::shared_ptr<Writer>& writer() const { return writer_; }

  void OnWriteDone(bool ok) override { writer_->WriteDone(ok); }
  void OnCancel() override { writer_->Cancel(); }
  void OnDone() override;

 private:
  std::shared_ptr<Writer> writer_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_CHAT_EVENT_STREAM_H_
