#include "services/message/chat_event_stream.h"

#include <utility>

namespace chat::message {

// A reactor call decided under the lock and made after it, so that gRPC
// never runs a reaction while the writer's lock is held.
struct ChatEventStream::Writer::Next {
  ChatEventStream* reactor = nullptr;
  const chat::v1::ChatEvent* write = nullptr;
  bool finish = false;
  grpc::Status status;
};

ChatEventStream::ChatEventStream() : writer_(std::make_shared<Writer>()) {
  writer_->reactor_ = this;
}

void ChatEventStream::OnDone() {
  writer_->Detach();
  delete this;
}

bool ChatEventStream::Writer::Write(chat::v1::ChatEvent event, bool last) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (finished_ || last_queued_ || cancelled_) return false;
  queue_.push_back(std::move(event));
  last_queued_ = last;
  Next next = writing_ ? Next{} : AfterWrite(lock);
  lock.unlock();
  Do(next);
  return true;
}

void ChatEventStream::Writer::Fail(const grpc::Status& status) {
  std::unique_lock<std::mutex> lock(mutex_);
  starting_ = false;
  if (finished_ || writing_) return;
  finished_ = true;
  Next next{reactor_, nullptr, true, status};
  lock.unlock();
  Do(next);
}

void ChatEventStream::Writer::Started() {
  std::unique_lock<std::mutex> lock(mutex_);
  starting_ = false;
  Next next = writing_ ? Next{} : AfterWrite(lock);
  lock.unlock();
  Do(next);
}

// With no write under way: the next write, or the end when it is due.
ChatEventStream::Writer::Next ChatEventStream::Writer::AfterWrite(
    std::unique_lock<std::mutex>&) {
  if (finished_) return {};
  if (cancelled_) {
    if (starting_) return {};
    finished_ = true;
    return {reactor_, nullptr, true, grpc::Status::CANCELLED};
  }
  if (!queue_.empty()) {
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    return {reactor_, &current_, false, grpc::Status::OK};
  }
  if (last_queued_ && !starting_) {
    finished_ = true;
    return {reactor_, nullptr, true, grpc::Status::OK};
  }
  return {};
}

void ChatEventStream::Writer::Do(const Next& next) {
  if (next.reactor == nullptr) return;
  if (next.write != nullptr) {
    next.reactor->StartWrite(next.write);
  } else if (next.finish) {
    next.reactor->Finish(next.status);
  }
}

void ChatEventStream::Writer::WriteDone(bool ok) {
  std::unique_lock<std::mutex> lock(mutex_);
  writing_ = false;
  if (!ok) cancelled_ = true;  // the stream is broken: the client is gone
  Next next = AfterWrite(lock);
  lock.unlock();
  Do(next);
}

void ChatEventStream::Writer::Cancel() {
  std::unique_lock<std::mutex> lock(mutex_);
  cancelled_ = true;
  queue_.clear();
  Next next = writing_ ? Next{} : AfterWrite(lock);
  lock.unlock();
  Do(next);
}

void ChatEventStream::Writer::Detach() {
  std::lock_guard<std::mutex> lock(mutex_);
  reactor_ = nullptr;
  finished_ = true;
  queue_.clear();
}

}  // namespace chat::message
