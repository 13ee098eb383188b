#include "services/message/multiplexed_streams.h"

#include <algorithm>
#include <atomic>
#include <utility>
#include <vector>

#include "services/message/chat_event_sink.h"

namespace chat::message {

// The state of the call that the streams' sinks share: they may outlive
// the reactor (a reply ends after its client's call), and once the call is
// over their events are refused.
class MultiplexedStreams::Call
    : public std::enable_shared_from_this<MultiplexedStreams::Call> {
 public:
  Call(MultiplexedStreams* reactor, Limits limits)
      : reactor_(reactor), limits_(limits) {}

  // A new stream numbered `id`; null when the number is in use.
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
  void WriteDone(bool ok);
  // The reactor is gone.
  void Detach();
  // New streams are refused; the call finishes after its last stream.
  void Drain();
  bool Draining() {
    std::lock_guard<std::mutex> lock(mutex_);
    return draining_;
  }

 private:
  // A reactor call decided under the lock and made after it, so that gRPC
  // never runs a reaction while the lock is held.
  struct Next {
    MultiplexedStreams* reactor = nullptr;
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
  MultiplexedStreams* reactor_;  // null once the call is over
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
class MultiplexedStreams::Sink final : public ChatEventSink {
 public:
  Sink(std::shared_ptr<Call> call, uint64_t id, std::string request_id)
      : ChatEventSink(std::move(request_id)), call_(std::move(call)), id_(id) {}

  uint64_t id() const { return id_; }
  bool Cancelled() override { return closed_.load(); }

 private:
  friend class Call;

  bool Emit(chat::v1::ChatEvent event, bool last) override {
    return call_->Push(*this, std::move(event), last);
  }

  const std::shared_ptr<Call> call_;
  const uint64_t id_;
  std::atomic<bool> closed_{false};  // written under the call's lock
};

std::shared_ptr<MultiplexedStreams::Sink> MultiplexedStreams::Call::Open(
    uint64_t id, std::string request_id) {
  // The sink keeps the call; the call keeps the sink only while it is open.
  auto sink =
      std::make_shared<Sink>(shared_from_this(), id, std::move(request_id));
  std::lock_guard<std::mutex> lock(mutex_);
  if (ending_) {
    sink->closed_ = true;
    return sink;
  }
  if (!streams_.try_emplace(id, sink).second) return nullptr;
  return sink;
}

void MultiplexedStreams::Call::Drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  draining_ = true;
  Next next = writing_ ? Next{} : AfterWrite();
  lock.unlock();
  Do(next);
}

void MultiplexedStreams::Call::Close(uint64_t id) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  it->second->closed_ = true;
  streams_.erase(it);
  Next next = writing_ ? Next{} : AfterWrite();
  lock.unlock();
  Do(next);
}

bool MultiplexedStreams::Call::Push(Sink& sink, chat::v1::ChatEvent event,
                                    bool last) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (sink.closed_ || ending_) return false;
  chat::v1::StreamEvent item;
  item.set_stream(sink.id());
  *item.mutable_event() = std::move(event);
  Enqueue(std::move(item));
  if (last && !ending_) {
    chat::v1::StreamEvent end;
    end.set_stream(sink.id());
    end.mutable_end();  // OK
    Enqueue(std::move(end));
    sink.closed_ = true;
    streams_.erase(sink.id());
  }
  const bool taken = !ending_;
  Next next = writing_ ? Next{} : AfterWrite();
  lock.unlock();
  Do(next);
  return taken;
}

void MultiplexedStreams::Call::Fail(Sink& sink, const grpc::Status& status) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (sink.closed_ || ending_) return;
  sink.closed_ = true;
  streams_.erase(sink.id());
  chat::v1::StreamEvent end;
  end.set_stream(sink.id());
  end.mutable_end()->set_code(status.error_code());
  end.mutable_end()->set_message(status.error_message());
  end.mutable_end()->set_details(status.error_details());
  Enqueue(std::move(end));
  Next next = writing_ ? Next{} : AfterWrite();
  lock.unlock();
  Do(next);
}

void MultiplexedStreams::Call::End(const grpc::Status& status) {
  std::unique_lock<std::mutex> lock(mutex_);
  EndLocked(status);
  Next next = writing_ ? Next{} : AfterWrite();
  lock.unlock();
  Do(next);
}

void MultiplexedStreams::Call::WriteDone(bool ok) {
  std::unique_lock<std::mutex> lock(mutex_);
  writing_ = false;
  // A failed write: the call is broken, the client gone.
  if (!ok) EndLocked(grpc::Status::CANCELLED);
  Next next = AfterWrite();
  lock.unlock();
  Do(next);
}

void MultiplexedStreams::Call::Detach() {
  std::lock_guard<std::mutex> lock(mutex_);
  reactor_ = nullptr;
  finished_ = true;
  EndLocked(grpc::Status::CANCELLED);
}

void MultiplexedStreams::Call::Enqueue(chat::v1::StreamEvent event) {
  queued_bytes_ += event.ByteSizeLong();
  queue_.push_back(std::move(event));
  if (queued_bytes_ > limits_.queued_bytes) {
    EndLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           "the client reads the events too slowly"));
  }
}

void MultiplexedStreams::Call::CloseAll() {
  for (auto& [id, sink] : streams_) sink->closed_ = true;
  streams_.clear();
}

void MultiplexedStreams::Call::EndLocked(const grpc::Status& status) {
  if (ending_) return;
  ending_ = true;
  end_status_ = status;
  CloseAll();
  queue_.clear();
  queued_bytes_ = 0;
}

MultiplexedStreams::Call::Next MultiplexedStreams::Call::AfterWrite() {
  if (finished_) return {};
  if (ending_) {
    finished_ = true;
    return {reactor_, false, true, end_status_};
  }
  if (queue_.empty()) {
    if (!draining_ || !streams_.empty()) return {};
    finished_ = true;  // drained: every stream ended and was written
    return {reactor_, false, true, grpc::Status::OK};
  }
  current_.Clear();
  size_t batch_bytes = 0;
  while (!queue_.empty() && current_.events_size() < limits_.batch_events &&
         (current_.events_size() == 0 || batch_bytes < limits_.batch_bytes)) {
    const size_t size = queue_.front().ByteSizeLong();
    batch_bytes += size;
    queued_bytes_ -= std::min(queued_bytes_, size);
    *current_.add_events() = std::move(queue_.front());
    queue_.pop_front();
  }
  writing_ = true;
  return {reactor_, true, false, grpc::Status::OK};
}

void MultiplexedStreams::Call::Do(const Next& next) {
  if (next.reactor == nullptr) return;
  if (next.write) {
    next.reactor->StartWrite(&current_);
  } else if (next.finish) {
    next.reactor->Finish(next.status);
  }
}

MultiplexedStreams::MultiplexedStreams(Executor* work, const Starter* start,
                                       Limits limits, MultiplexedCalls* calls)
    : call_(std::make_shared<Call>(this, limits)),
      calls_(calls),
      work_(work),
      start_(start) {
  calls_->Add(call_);
  StartRead(&request_);
}

void MultiplexedStreams::OnReadDone(bool ok) {
  if (!ok) {
    // The client ended its side (or the call broke): nothing more to do.
    call_->End(grpc::Status::OK);
    return;
  }
  const uint64_t id = request_.stream();
  switch (request_.action_case()) {
    case chat::v1::MultiplexRequest::kOpen: {
      std::shared_ptr<Sink> sink =
          call_->Open(id, request_.open().request_id());
      if (sink != nullptr && call_->Draining()) {
        call_->Fail(*sink, grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                        "the message service is stopping"));
        break;
      }
      if (sink == nullptr) {
        call_->End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "a stream of that number is open"));
        return;
      }
      work_->Schedule([call = call_, sink = std::move(sink), start = start_,
                       open = std::move(*request_.mutable_open())] {
        const grpc::Status status = (*start)(open, sink);
        if (!status.ok()) call->Fail(*sink, status);
      });
      break;
    }
    case chat::v1::MultiplexRequest::kClose:
      call_->Close(id);
      break;
    default:
      call_->End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "a request with no action"));
      return;
  }
  request_.Clear();
  StartRead(&request_);
}

void MultiplexedStreams::OnWriteDone(bool ok) { call_->WriteDone(ok); }

void MultiplexedStreams::OnCancel() { call_->End(grpc::Status::CANCELLED); }

void MultiplexedStreams::OnDone() {
  calls_->Remove(call_.get());
  call_->Detach();
  delete this;
}

void MultiplexedCalls::Add(
    const std::shared_ptr<MultiplexedStreams::Call>& call) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (draining_) {
    lock.unlock();
    call->Drain();
    return;
  }
  calls_.emplace(call.get(), call);
}

void MultiplexedCalls::Remove(const MultiplexedStreams::Call* call) {
  std::lock_guard<std::mutex> lock(mutex_);
  calls_.erase(call);
}

void MultiplexedCalls::Drain() {
  std::vector<std::shared_ptr<MultiplexedStreams::Call>> calls;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    draining_ = true;
    for (const auto& [key, weak] : calls_) {
      if (std::shared_ptr<MultiplexedStreams::Call> call = weak.lock()) {
        calls.push_back(std::move(call));
      }
    }
  }
  for (const auto& call : calls) call->Drain();
}

}  // namespace chat::message
