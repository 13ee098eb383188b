#ifndef CHAT_COMMON_SERVER_H_
#define CHAT_COMMON_SERVER_H_

// The bootstrap every service shares: gRPC server with grpc.health.v1 and
// reflection, an access log, a readiness probe that drives the health status
// (NOT_SERVING while the database does not answer), and a graceful stop on
// SIGTERM or SIGINT: health turns NOT_SERVING, new calls are refused, calls
// under way finish until the drain timeout, then the rest are cancelled.
//
//   int main(int argc, char** argv) {
//     chat::BlockTerminationSignals();   // first, before any thread starts
//     ...
//     absl::Status s = chat::Serve(options, {&service});
//   }

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/impl/codegen/service_type.h"

namespace chat {

struct ServerOptions {
  std::string name;            // the service name in logs
  std::string listen_address;  // host:port; port 0 picks a free one
  int max_threads = 64;
  // The threads kept waiting for calls between calls. gRPC's default (2)
  // makes a sync server under 16 concurrent calls end a thread after
  // nearly every call and start another for the next: a clone, an exit and
  // a cold malloc cache each time (in a profile of ListMessages, 350
  // threads in 10 s). Idle threads cost a stack each; busy ones are capped
  // by max_threads either way.
  int idle_threads = 16;
  absl::Duration drain_timeout = absl::Seconds(30);
  // Polled every probe_interval; OK means ready to serve.
  std::function<absl::Status()> readiness_probe;
  absl::Duration probe_interval = absl::Seconds(2);
  // Called once the signal arrives, before the drain: work that outlives
  // calls (replies in progress) stops here.
  std::function<void()> on_stop;
};

// Blocks SIGTERM and SIGINT in the calling thread and in every thread it
// starts later, so that Serve can wait for them. Call it first in main.
void BlockTerminationSignals();

// Serves until SIGTERM or SIGINT, then drains and returns.
absl::Status Serve(const ServerOptions& options,
                   const std::vector<grpc::Service*>& services);

}  // namespace chat

#endif  // CHAT_COMMON_SERVER_H_
