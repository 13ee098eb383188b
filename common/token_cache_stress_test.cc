// CachingVerifier shared by many threads, in front of the real JwtVerifier:
// it must answer exactly what the verifier answers for every (token, time),
// including when a small capacity keeps emptying it and tokens expire under
// it, and it must still save verifications. Meant for TSan too (make
// test-sanitize).

#include <atomic>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/jwt.h"
#include "common/test_keys.h"
#include "common/token_cache.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

const absl::Time kIssued = absl::FromUnixSeconds(1767225600);
constexpr int kThreads = 8;
constexpr int kTokens = 24;

// Counts the calls that reach the verifier behind the cache.
class Counting final : public AccessTokenVerifier {
 public:
  explicit Counting(const AccessTokenVerifier* inner) : inner_(inner) {}
  absl::StatusOr<AccessClaims> Verify(absl::string_view token,
                                      absl::Time now) const override {
    calls_.fetch_add(1, std::memory_order_relaxed);
    return inner_->Verify(token, now);
  }
  int calls() const { return calls_.load(); }

 private:
  const AccessTokenVerifier* inner_;
  mutable std::atomic<int> calls_{0};
};

class TokenCacheStressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<JwtSigner>> signer =
        JwtSigner::FromPem(::chat::testing::NewRsaPrivateKeyPem());
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_ = *std::move(signer);
    keys_.Add(signer_->public_key());
    // Token i lives 5 + i minutes; every third one is tampered with (its
    // payload swapped for another token's, so the signature is wrong).
    for (int i = 0; i < kTokens; ++i) {
      AccessClaims claims;
      claims.issuer = "chat-backend";
      claims.audience = "chat-backend";
      claims.subject = absl::StrCat("user-", i);
      claims.jwt_id = absl::StrCat("jti-", i);
      claims.issued_at = kIssued;
      claims.not_before = kIssued;
      claims.expires_at = kIssued + absl::Minutes(5 + i);
      absl::StatusOr<std::string> token = signer_->Sign(claims);
      ASSERT_TRUE(token.ok()) << token.status();
      tokens_.push_back(*token);
    }
    for (int i = 2; i < kTokens; i += 3) {
      const std::string& other = tokens_[i - 1];
      std::string& token = tokens_[i];
      const size_t a = token.find('.'), b = token.rfind('.');
      const size_t oa = other.find('.'), ob = other.rfind('.');
      token = absl::StrCat(token.substr(0, a), other.substr(oa, ob - oa),
                           token.substr(b));
    }
    // Moments around every expiry, before and after the 60 s skew.
    for (int minutes : {0, 4, 10, 17, 28, 29, 30}) {
      times_.push_back(kIssued + absl::Minutes(minutes));
      times_.push_back(kIssued + absl::Minutes(minutes) - absl::Seconds(1));
      times_.push_back(kIssued + absl::Minutes(minutes) + absl::Seconds(30));
    }
  }

  std::unique_ptr<JwtSigner> signer_;
  StaticKeySet keys_;
  std::vector<std::string> tokens_;
  std::vector<absl::Time> times_;
};

TEST_F(TokenCacheStressTest, AnswersExactlyWhatTheVerifierAnswers) {
  JwtVerifier verifier(&keys_,
                       {.issuer = "chat-backend", .audience = "chat-backend"});
  // What the verifier alone says, for every token at every time.
  struct Expected {
    bool ok;
    std::string subject;
    absl::Time expires_at;
  };
  std::vector<std::vector<Expected>> expected(tokens_.size());
  int accepted = 0;
  for (size_t t = 0; t < tokens_.size(); ++t) {
    for (absl::Time now : times_) {
      absl::StatusOr<AccessClaims> claims = verifier.Verify(tokens_[t], now);
      expected[t].push_back(
          claims.ok() ? Expected{true, claims->subject, claims->expires_at}
                      : Expected{false, "", absl::InfinitePast()});
      accepted += claims.ok();
    }
  }
  ASSERT_GT(accepted, 0);  // the table tests both answers

  // Capacity 5 for 24 tokens: the cache keeps emptying while others read.
  Counting counting(&verifier);
  CachingVerifier cache(&counting, 5);
  constexpr int kRounds = 6;
  std::atomic<int> mismatches{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int w = 0; w < kThreads; ++w) {
    threads.emplace_back([&, w] {
      start.arrive_and_wait();
      for (int round = 0; round < kRounds; ++round) {
        // Each thread walks the table in its own order.
        for (size_t i = 0; i < tokens_.size() * times_.size(); ++i) {
          const size_t cell =
              (i * 7 + w * 13 + round) % (tokens_.size() * times_.size());
          const size_t t = cell / times_.size(), n = cell % times_.size();
          absl::StatusOr<AccessClaims> got =
              cache.Verify(tokens_[t], times_[n]);
          const Expected& want = expected[t][n];
          if (got.ok() != want.ok ||
              (got.ok() && (got->subject != want.subject ||
                            got->expires_at != want.expires_at))) {
            mismatches.fetch_add(1);
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST_F(TokenCacheStressTest, EachThreadVerifiesEachTokenAtMostOnce) {
  JwtVerifier verifier(&keys_,
                       {.issuer = "chat-backend", .audience = "chat-backend"});
  Counting counting(&verifier);
  CachingVerifier cache(&counting);  // room for every token
  constexpr int kRounds = 20;
  std::atomic<int> wrong{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  int good = 0;
  for (int i = 0; i < kTokens; ++i) good += i % 3 != 2;
  for (int w = 0; w < kThreads; ++w) {
    threads.emplace_back([&, w] {
      start.arrive_and_wait();
      for (int round = 0; round < kRounds; ++round) {
        for (int i = 0; i < kTokens; ++i) {
          const int t = (i + w) % kTokens;
          absl::StatusOr<AccessClaims> claims =
              cache.Verify(tokens_[t], kIssued + absl::Minutes(1));
          const bool tampered = t % 3 == 2;
          if (claims.ok() == tampered ||
              (claims.ok() && claims->subject != absl::StrCat("user-", t))) {
            wrong.fetch_add(1);
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  // Tampered tokens are asked about every time; a good one at most once per
  // thread (two threads may miss it at the same moment), never per round.
  const int tampered = kTokens - good;
  EXPECT_LE(counting.calls(), tampered * kThreads * kRounds + good * kThreads);
  EXPECT_GE(counting.calls(), tampered * kThreads * kRounds + good);
}

}  // namespace
}  // namespace chat
