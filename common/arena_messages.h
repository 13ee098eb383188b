#ifndef CHAT_COMMON_ARENA_MESSAGES_H_
#define CHAT_COMMON_ARENA_MESSAGES_H_

// The request and the answer of a callback unary method on one protobuf
// arena. A listing's answer holds hundreds of objects (each message, the
// string objects of its fields, its timestamps); without an arena each is
// a malloc on the thread that fills the page and a free on the gRPC thread
// that ends the call. On the arena they come from a block that is part of
// the holder, and all of them go in one free when the call ends.
//
//   ArenaMessages<ListRequest, ListResponse> list_messages_;
//   SetMessageAllocatorFor_List(&list_messages_);  // in the service
//
// Strings longer than the small-string buffer keep their own allocation:
// protobuf 3.21 puts the std::string on the arena, not its characters.

#include <cstddef>

#include "google/protobuf/arena.h"
#include "grpcpp/support/message_allocator.h"

namespace chat {

template <typename Request, typename Response>
class ArenaMessages final : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override {
    return new Holder;
  }

 private:
  // A first page of 50 messages of 200 characters takes about 20 KiB of
  // the arena; larger pages continue in blocks of 32 KiB.
  static constexpr size_t kInlineBlockBytes = 24 * 1024;
  static constexpr size_t kNextBlockBytes = 32 * 1024;

  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(Options(inline_block_)) {
      this->set_request(
          google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(
          google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    static google::protobuf::ArenaOptions Options(char* block) {
      google::protobuf::ArenaOptions options;
      options.initial_block = block;
      options.initial_block_size = kInlineBlockBytes;
      options.start_block_size = kNextBlockBytes;
      options.max_block_size = kNextBlockBytes;
      return options;
    }

    // Declared before the arena: it outlives the arena that uses it.
    alignas(std::max_align_t) char inline_block_[kInlineBlockBytes];
    google::protobuf::Arena arena_;
  };
};

}  // namespace chat

#endif  // CHAT_COMMON_ARENA_MESSAGES_H_
