// The message service's EventStreams.Multiplex served over real gRPC on
// 127.0.0.1 by EventStreamsImpl, over Chats with the in-memory store and
// the echo provider, tokens signed and verified with a key made for the
// test. Many streams are opened on one call from several threads at once,
// valid and failing alike; each must get its own events, in order, and
// its end. Meant for TSan and ASan too (make test-sanitize).

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "chat/v1/event_streams.grpc.pb.h"
#include "common/caller.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/jwt.h"
#include "common/test_keys.h"
#include "common/thread_pool.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "services/message/chat.h"
#include "services/message/echo_provider.h"
#include "services/message/event_streams_handler.h"
#include "services/message/in_memory_message_store.h"

namespace chat::message {
namespace {

using chat::v1::MultiplexRequest;
using chat::v1::MultiplexResponse;
using chat::v1::StreamEvent;

constexpr int kUsers = 4;
constexpr int kThreads = 8;
constexpr int kStreamsPerThread = 25;

class MultiplexedStreamsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<JwtSigner>> signer =
        JwtSigner::FromPem(::chat::testing::NewRsaPrivateKeyPem());
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_ = *std::move(signer);
    keys_.Add(signer_->public_key());
    for (int u = 0; u < kUsers; ++u) {
      users_.push_back(NewUuidV7());
      conversations_.push_back(NewUuidV7());
      store_.AddConversation(users_[u], conversations_[u]);
    }
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = chat::v1::EventStreams::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::ToChronoTime(absl::Now()));
  }

  std::string Authorization(int user) const {
    AccessClaims claims;
    claims.issuer = "test";
    claims.audience = "chat";
    claims.subject = users_[user];
    claims.jwt_id = NewUuidV7();
    claims.session_id = NewUuidV7();
    claims.issued_at = absl::Now();
    claims.expires_at = absl::Now() + absl::Minutes(5);
    absl::StatusOr<std::string> token = signer_->Sign(claims);
    EXPECT_TRUE(token.ok()) << token.status();
    return absl::StrCat("Bearer ", token.value_or(""));
  }

  std::unique_ptr<JwtSigner> signer_;
  StaticKeySet keys_;
  JwtVerifier verifier_{&keys_, {.issuer = "test", .audience = "chat"}};
  SystemClock clock_;
  CallerResolver callers_{&verifier_, nullptr, &clock_};
  InMemoryMessageStore store_;
  EchoProvider provider_;
  Chats chats_{&store_,
               &provider_,
               &clock_,
               {.max_streams_per_user = 1000, .finish_threads = 2}};
  // The service keeps the pool's address only; the pool is destroyed
  // first, running what is left while the service stands.
  EventStreamsImpl service_{&chats_, &callers_, &work_};
  ThreadPool work_{4};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<chat::v1::EventStreams::Stub> stub_;
  std::vector<std::string> users_;
  std::vector<std::string> conversations_;
};

// What one call received, by stream.
struct Received {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<uint64_t, std::vector<StreamEvent>> streams;
  int ended = 0;
  size_t largest_batch = 0;  // bytes of the largest response
  int responses = 0;
};

// Reads the call's responses into `received` until it ends.
void ReadAll(grpc::ClientReaderWriter<MultiplexRequest, MultiplexResponse>* rw,
             Received* received) {
  MultiplexResponse response;
  while (rw->Read(&response)) {
    std::lock_guard<std::mutex> lock(received->mutex);
    received->largest_batch =
        std::max(received->largest_batch, response.ByteSizeLong());
    ++received->responses;
    for (StreamEvent& event : *response.mutable_events()) {
      if (event.has_end()) ++received->ended;
      received->streams[event.stream()].push_back(std::move(event));
    }
    received->changed.notify_all();
  }
}

TEST_F(MultiplexedStreamsTest, ManyStreamsFromManyThreadsEachGetTheirOwn) {
  grpc::ClientContext context;
  auto rw = stub_->Multiplex(&context);
  Received received;
  std::thread reader([&] { ReadAll(rw.get(), &received); });

  // Stream n: n % 5 == 1 a bad token, n % 5 == 2 another user's
  // conversation, n % 5 == 3 no call named; the rest a Chat whose content
  // names the stream.
  std::mutex write_mutex;
  std::latch start(kThreads);
  std::vector<std::thread> writers;
  for (int w = 0; w < kThreads; ++w) {
    writers.emplace_back([&, w] {
      start.arrive_and_wait();
      for (int i = 0; i < kStreamsPerThread; ++i) {
        const int n = w * kStreamsPerThread + i + 1;
        const int user = n % kUsers;
        MultiplexRequest request;
        request.set_stream(n);
        chat::v1::OpenEventStream* open = request.mutable_open();
        open->set_request_id(absl::StrCat("rid-", n));
        open->set_authorization(n % 5 == 1 ? "Bearer not-a-token"
                                           : Authorization(user));
        if (n % 5 != 3) {
          chat::v1::ChatRequest* chat = open->mutable_chat();
          chat->set_conversation_id(
              conversations_[n % 5 == 2 ? (user + 1) % kUsers : user]);
          chat->set_content(absl::StrCat("stream ", n, " says hello"));
        }
        std::lock_guard<std::mutex> lock(write_mutex);
        ASSERT_TRUE(rw->Write(request));
      }
    });
  }
  for (std::thread& t : writers) t.join();

  constexpr int kStreams = kThreads * kStreamsPerThread;
  {
    std::unique_lock<std::mutex> lock(received.mutex);
    ASSERT_TRUE(
        received.changed.wait_for(lock, std::chrono::seconds(60),
                                  [&] { return received.ended == kStreams; }))
        << received.ended << " of " << kStreams << " streams ended";
  }
  rw->WritesDone();
  reader.join();
  EXPECT_TRUE(rw->Finish().ok());

  ASSERT_EQ(received.streams.size(), kStreams);
  for (const auto& [n, events] : received.streams) {
    ASSERT_FALSE(events.empty());
    const StreamEvent& end = events.back();
    ASSERT_TRUE(end.has_end()) << "stream " << n;
    switch (n % 5) {
      case 1:
        EXPECT_EQ(end.end().code(), grpc::StatusCode::UNAUTHENTICATED);
        EXPECT_EQ(events.size(), 1u);
        continue;
      case 2:
        EXPECT_EQ(end.end().code(), grpc::StatusCode::NOT_FOUND);
        EXPECT_EQ(events.size(), 1u);
        continue;
      case 3:
        EXPECT_EQ(end.end().code(), grpc::StatusCode::INVALID_ARGUMENT);
        EXPECT_EQ(events.size(), 1u);
        continue;
    }
    EXPECT_EQ(end.end().code(), grpc::StatusCode::OK) << end.end().message();
    // message, reply, deltas, done, end: each the stream's own.
    ASSERT_GE(events.size(), 5u) << "stream " << n;
    EXPECT_EQ(events[0].event().message().content(),
              absl::StrCat("stream ", n, " says hello"));
    EXPECT_EQ(events[1].event().reply().status(), "in_progress");
    std::string text;
    for (size_t i = 2; i + 2 < events.size(); ++i) {
      ASSERT_TRUE(events[i].event().has_delta()) << "stream " << n;
      EXPECT_EQ(events[i].event().delta().offset(), text.size());
      text += events[i].event().delta().text();
    }
    const chat::v1::Message& done =
        events[events.size() - 2].event().done().message();
    EXPECT_EQ(done.status(), "complete");
    EXPECT_EQ(done.id(), events[1].event().reply().id());
    EXPECT_EQ(text,
              EchoProvider::ReplyTo(absl::StrCat("stream ", n, " says hello")));
    EXPECT_EQ(done.content(), text);
  }
}

TEST_F(MultiplexedStreamsTest, ARequestWithNoActionEndsTheCall) {
  grpc::ClientContext context;
  auto rw = stub_->Multiplex(&context);
  MultiplexRequest request;
  request.set_stream(7);
  ASSERT_TRUE(rw->Write(request));
  MultiplexResponse response;
  while (rw->Read(&response)) {
  }
  EXPECT_EQ(rw->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// Replies of 90,000 characters, ten at once: their message and done events
// (each holding the text) go out in batches that stop at a megabyte, far
// below what a gRPC client takes in one message.
TEST_F(MultiplexedStreamsTest, LargeEventsAreBatchedByBytes) {
  grpc::ClientContext context;
  auto rw = stub_->Multiplex(&context);
  Received received;
  std::thread reader([&] { ReadAll(rw.get(), &received); });
  const std::string words = [] {
    std::string s;
    while (s.size() < 90000) s += "lorem ipsum ";
    return s;
  }();
  for (int n = 1; n <= 10; ++n) {
    MultiplexRequest request;
    request.set_stream(n);
    request.mutable_open()->set_authorization(Authorization(n % kUsers));
    chat::v1::ChatRequest* chat = request.mutable_open()->mutable_chat();
    chat->set_conversation_id(conversations_[n % kUsers]);
    chat->set_content(words);
    ASSERT_TRUE(rw->Write(request));
  }
  {
    std::unique_lock<std::mutex> lock(received.mutex);
    ASSERT_TRUE(received.changed.wait_for(
        lock, std::chrono::seconds(60), [&] { return received.ended == 10; }));
  }
  rw->WritesDone();
  reader.join();
  EXPECT_TRUE(rw->Finish().ok());
  // A batch stops once it holds a megabyte; its last event is at most the
  // size of a done event (~180 KB here).
  EXPECT_LT(received.largest_batch, (size_t{1} << 20) + 200000);
  for (int n = 1; n <= 10; ++n) {
    const std::vector<StreamEvent>& events = received.streams[n];
    ASSERT_GE(events.size(), 2u);
    EXPECT_EQ(events[events.size() - 2].event().done().message().content(),
              EchoProvider::ReplyTo(words));
  }
}

// A stopping service: its calls finish once their streams have ended, and
// a stream opened then is refused UNAVAILABLE (the gateway's client goes
// to another replica).
TEST_F(MultiplexedStreamsTest, DrainingEndsTheCallsAfterTheirStreams) {
  grpc::ClientContext context;
  auto rw = stub_->Multiplex(&context);
  Received received;
  std::thread reader([&] { ReadAll(rw.get(), &received); });
  auto open = [&](int n) {
    MultiplexRequest request;
    request.set_stream(n);
    request.mutable_open()->set_authorization(Authorization(0));
    chat::v1::ChatRequest* chat = request.mutable_open()->mutable_chat();
    chat->set_conversation_id(conversations_[0]);
    chat->set_content(absl::StrCat("stream ", n));
    return rw->Write(request);
  };
  for (int n = 1; n <= 5; ++n) ASSERT_TRUE(open(n));
  {
    std::unique_lock<std::mutex> lock(received.mutex);
    ASSERT_TRUE(received.changed.wait_for(lock, std::chrono::seconds(60),
                                          [&] { return received.ended == 5; }));
  }
  service_.Drain();
  // The call ends by itself, OK, without the client ending its side.
  reader.join();
  EXPECT_TRUE(rw->Finish().ok());
  for (int n = 1; n <= 5; ++n) {
    EXPECT_EQ(received.streams[n].back().end().code(), grpc::StatusCode::OK);
  }

  // A call opened while draining refuses its stream, then ends.
  grpc::ClientContext late_context;
  rw = stub_->Multiplex(&late_context);
  Received late;
  open(6);
  ReadAll(rw.get(), &late);
  const grpc::Status status = rw->Finish();
  // The call ended at once (before or after refusing the stream): the
  // stream never started.
  EXPECT_TRUE(status.ok()) << status.error_message();
  if (!late.streams[6].empty()) {
    ASSERT_EQ(late.streams[6].size(), 1u);
    EXPECT_EQ(late.streams[6][0].end().code(), grpc::StatusCode::UNAVAILABLE);
  }
}

TEST_F(MultiplexedStreamsTest, ACallCancelledWhileItsStreamsStartLosesNoReply) {
  for (int round = 0; round < 10; ++round) {
    grpc::ClientContext context;
    auto rw = stub_->Multiplex(&context);
    for (int n = 1; n <= 20; ++n) {
      MultiplexRequest request;
      request.set_stream(n);
      request.mutable_open()->set_authorization(Authorization(0));
      chat::v1::ChatRequest* chat = request.mutable_open()->mutable_chat();
      chat->set_conversation_id(conversations_[0]);
      chat->set_content(absl::StrCat("round ", round, " stream ", n));
      if (!rw->Write(request)) break;
      if (n == 10) context.TryCancel();
    }
    MultiplexResponse response;
    while (rw->Read(&response)) {
    }
    EXPECT_EQ(rw->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // Every reply that started ends, stored complete, with nobody to tell.
  for (int i = 0; i < 600 && chats_.live_count() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(chats_.live_count(), 0);
}

}  // namespace
}  // namespace chat::message
