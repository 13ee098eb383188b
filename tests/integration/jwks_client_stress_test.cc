// JwksClient shared by many threads, fetching from the auth service's real
// GetJwks handler served over gRPC on 127.0.0.1 (no database needed: the
// JWK Set comes from the published keys alone). Every thread must see the
// same keys, a rotation must reach all of them, and a burst of unknown kids
// must not turn into a burst of fetches. Meant for TSan too (make
// test-sanitize).

#include <atomic>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/jwks_client.h"
#include "common/test_keys.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/server_interceptor.h"
#include "gtest/gtest.h"
#include "services/auth/auth_handler.h"

namespace chat {
namespace {

constexpr int kThreads = 8;

// Counts the GetJwks calls that reach the server.
class CountingInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CountingInterceptorFactory(std::atomic<int>* fetches)
      : fetches_(fetches) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    if (absl::EndsWith(info->method(), "/GetJwks")) fetches_->fetch_add(1);
    return nullptr;  // nothing to intercept beyond counting
  }

 private:
  std::atomic<int>* fetches_;
};

class JwksClientStressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    first_ = NewKey();
    published_.Add(first_);
    // The handler's GetJwks reads only the published keys.
    service_ = std::make_unique<auth::AuthServiceImpl>(nullptr, nullptr,
                                                       &published_, nullptr);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(
        std::make_unique<CountingInterceptorFactory>(&fetches_));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::ToChronoTime(absl::Now()));
  }

  static std::shared_ptr<const RsaPublicKey> NewKey() {
    absl::StatusOr<std::shared_ptr<const RsaPublicKey>> key =
        RsaPublicKey::FromPem(::chat::testing::NewRsaPrivateKeyPem());
    EXPECT_TRUE(key.ok()) << key.status();
    return *key;
  }

  // Runs body(thread) on kThreads threads released together.
  template <typename Body>
  static void OnThreads(Body body) {
    std::latch start(kThreads);
    std::vector<std::thread> threads;
    for (int w = 0; w < kThreads; ++w) {
      threads.emplace_back([&, w] {
        start.arrive_and_wait();
        body(w);
      });
    }
    for (std::thread& t : threads) t.join();
  }

  std::shared_ptr<const RsaPublicKey> first_;
  StaticKeySet published_;
  std::unique_ptr<auth::AuthServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::atomic<int> fetches_{0};
};

TEST_F(JwksClientStressTest, EveryThreadSeesTheSameKeysAndARotation) {
  JwksClient client(channel_, absl::ZeroDuration());
  ASSERT_TRUE(client.Refresh().ok());
  ASSERT_EQ(fetches_.load(), 1);

  // Known kid: answered from the cache, the same key for everyone.
  std::atomic<int> wrong{0};
  OnThreads([&](int) {
    for (int i = 0; i < 200; ++i) {
      std::shared_ptr<const RsaPublicKey> key = client.Find(first_->kid());
      if (key == nullptr || key->jwk().n != first_->jwk().n) wrong.fetch_add(1);
    }
  });
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(fetches_.load(), 1) << "a known kid never fetches";

  // A rotation: the new kid is unknown until fetched, then everyone finds
  // it, and the old key stays found throughout.
  std::shared_ptr<const RsaPublicKey> second = NewKey();
  published_.Add(second);
  OnThreads([&](int w) {
    for (int i = 0; i < 20; ++i) {
      std::shared_ptr<const RsaPublicKey> key =
          client.Find(i % 2 == w % 2 ? second->kid() : first_->kid());
      const std::shared_ptr<const RsaPublicKey>& want =
          i % 2 == w % 2 ? second : first_;
      if (key == nullptr || key->jwk().n != want->jwk().n) wrong.fetch_add(1);
    }
  });
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GE(fetches_.load(), 2);
}

TEST_F(JwksClientStressTest, AForgedKidFloodStaysWithinTheRefetchInterval) {
  JwksClient client(channel_, absl::Hours(1));
  ASSERT_TRUE(client.Refresh().ok());
  std::atomic<int> found{0};
  OnThreads([&](int w) {
    for (int i = 0; i < 100; ++i) {
      if (client.Find(absl::StrCat("forged-", w, "-", i)) != nullptr) ++found;
    }
  });
  EXPECT_EQ(found.load(), 0);
  EXPECT_EQ(fetches_.load(), 1) << "fetched again within the interval";
  EXPECT_NE(client.Find(first_->kid()), nullptr);
}

// jwks_client.h promises at most one refetch per min_refetch_interval:
// threads that meet an unknown kid while a fetch is in flight wait for it
// instead of starting another (it once fetched once per concurrent caller).
TEST_F(JwksClientStressTest, ConcurrentUnknownKidsFetchOnce) {
  JwksClient client(channel_, absl::Hours(1));
  std::atomic<int> found{0};
  OnThreads([&](int w) {
    if (client.Find(absl::StrCat("forged-", w)) != nullptr) ++found;
  });
  EXPECT_EQ(found.load(), 0);
  EXPECT_EQ(fetches_.load(), 1) << "one burst of unknown kids, one fetch";
}

}  // namespace
}  // namespace chat
