#include "services/message/multiplexed_streams.h"

#include <utility>
#include <vector>

namespace chat::message {

MultiplexedStreams::MultiplexedStreams(Executor* work, const Starter* start,
                                       Limits limits, MultiplexedCalls* calls)
    : call_(std::make_shared<MultiplexedCall>(
          static_cast<MultiplexedCall::Writer*>(this), limits)),
      calls_(calls),
      work_(work),
      start_(start) {
  calls_->Add(call_);
  StartRead(&request_);
}

void MultiplexedStreams::OnReadDone(bool ok) {
  if (!ok) {
    // The client ended its side: it opens no more streams, and the call
    // finishes once those open have ended (a broken call is OnCancel).
    call_->Drain();
    return;
  }
  const uint64_t id = request_.stream();
  switch (request_.action_case()) {
    case chat::v1::MultiplexRequest::kOpen: {
      std::shared_ptr<MultiplexedCall::Sink> sink =
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
      if (sink->Cancelled()) break;  // the call has ended: start nothing
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

void MultiplexedCalls::Add(const std::shared_ptr<MultiplexedCall>& call) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (draining_) {
    lock.unlock();
    call->Drain();
    return;
  }
  calls_.emplace(call.get(), call);
}

void MultiplexedCalls::Remove(const MultiplexedCall* call) {
  std::lock_guard<std::mutex> lock(mutex_);
  calls_.erase(call);
}

void MultiplexedCalls::Drain() {
  std::vector<std::shared_ptr<MultiplexedCall>> calls;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    draining_ = true;
    for (const auto& [key, weak] : calls_) {
      if (std::shared_ptr<MultiplexedCall> call = weak.lock()) {
        calls.push_back(std::move(call));
      }
    }
  }
  for (const auto& call : calls) call->Drain();
}

}  // namespace chat::message
