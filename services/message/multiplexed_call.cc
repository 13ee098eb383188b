#include "services/message/multiplexed_call.h"

#include <algorithm>
#include <utility>

namespace chat::message {

std::shared_ptr<MultiplexedCall::Sink> MultiplexedCall::Open(
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

void MultiplexedCall::Drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  draining_ = true;
  Next next = writing_ ? Next{} : AfterWrite();
  lock.unlock();
  Do(next);
}

void MultiplexedCall::Close(uint64_t id) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  it->second->closed_ = true;
  streams_.erase(it);
  Next next = writing_ ? Next{} : AfterWrite();
  lock.unlock();
  Do(next);
}

bool MultiplexedCall::Push(Sink& sink, chat::v1::ChatEvent event, bool last) {
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

void MultiplexedCall::Fail(Sink& sink, const grpc::Status& status) {
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

void MultiplexedCall::End(const grpc::Status& status) {
  std::unique_lock<std::mutex> lock(mutex_);
  EndLocked(status);
  Next next = writing_ ? Next{} : AfterWrite();
  lock.unlock();
  Do(next);
}

void MultiplexedCall::WriteDone(bool ok) {
  std::unique_lock<std::mutex> lock(mutex_);
  writing_ = false;
  // A failed write: the call is broken, the client gone.
  if (!ok) EndLocked(grpc::Status::CANCELLED);
  Next next = AfterWrite();
  lock.unlock();
  Do(next);
}

void MultiplexedCall::Detach() {
  std::lock_guard<std::mutex> lock(mutex_);
  writer_ = nullptr;
  finished_ = true;
  current_.Clear();  // no write is under way once the reactor is done
  EndLocked(grpc::Status::CANCELLED);
}

void MultiplexedCall::Enqueue(chat::v1::StreamEvent event) {
  queued_bytes_ += event.ByteSizeLong();
  queue_.push_back(std::move(event));
  if (queued_bytes_ > limits_.queued_bytes) {
    EndLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           "the client reads the events too slowly"));
  }
}

void MultiplexedCall::CloseAll() {
  for (auto& [id, sink] : streams_) sink->closed_ = true;
  streams_.clear();
}

void MultiplexedCall::EndLocked(const grpc::Status& status) {
  if (ending_) return;
  ending_ = true;
  end_status_ = status;
  CloseAll();
  queue_.clear();
  queued_bytes_ = 0;
}

MultiplexedCall::Next MultiplexedCall::AfterWrite() {
  if (finished_) return {};
  if (ending_) {
    finished_ = true;
    return {writer_, false, true, end_status_};
  }
  if (queue_.empty()) {
    if (!draining_ || !streams_.empty()) return {};
    finished_ = true;  // drained: every stream ended and was written
    return {writer_, false, true, grpc::Status::OK};
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
  return {writer_, true, false, grpc::Status::OK};
}

void MultiplexedCall::Do(const Next& next) {
  if (next.writer == nullptr) return;
  if (next.write) {
    next.writer->StartBatch(&current_);
  } else if (next.finish) {
    next.writer->FinishCall(next.status);
  }
}

bool MultiplexedCall::Draining() {
  std::lock_guard<std::mutex> lock(mutex_);
  return draining_;
}

}  // namespace chat::message
