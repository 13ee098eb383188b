#include "common/server.h"

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"
#include "common/request_context.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/support/server_interceptor.h"

namespace chat {
namespace {

using grpc::experimental::InterceptionHookPoints;

// One log line per call: method, code, duration and request id.
class AccessLogInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit AccessLogInterceptor(grpc::experimental::ServerRpcInfo* info)
      : info_(info), start_(absl::Now()) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      // Probes poll every second or two; only their failures are news.
      if (status.ok() &&
          absl::StartsWith(info_->method(), "/grpc.health.v1.Health/")) {
        methods->Proceed();
        return;
      }
      const std::string millis =
          absl::StrCat(absl::ToDoubleMilliseconds(absl::Now() - start_));
      const std::string code = absl::StrCat(status.error_code());
      const std::string request_id = RequestIdOf(*info_->server_context());
      const absl::string_view method = info_->method();
      if (status.error_code() == grpc::StatusCode::INTERNAL ||
          status.error_code() == grpc::StatusCode::UNKNOWN) {
        log::Error("call", {{"method", method},
                            {"code", code},
                            {"ms", millis},
                            {"request_id", request_id}});
      } else {
        log::Info("call", {{"method", method},
                           {"code", code},
                           {"ms", millis},
                           {"request_id", request_id}});
      }
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* info_;
  absl::Time start_;
};

class AccessLogFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new AccessLogInterceptor(info);
  }
};

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

absl::Status Serve(const ServerOptions& options,
                   const std::vector<grpc::Service*>& services) {
  log::SetServiceName(options.name);
  // Debian builds abseil without NDEBUG, so every absl::Mutex (gRPC core
  // locks with them on each call) keeps a lock-order graph for deadlock
  // detection: about 4% of a listing's CPU. Our own code locks std::mutex;
  // the sanitizer runs (TSan) are what finds lock-order bugs. Turning the
  // detector off while threads run is safe: it only stops the tracking.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen_address,
                           grpc::InsecureServerCredentials(), &port);
  // Clients reconnect every few minutes, so after a scale-out new replicas
  // get their share; calls under way (long streamed replies) may finish.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, 5 * 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                             10 * 60 * 1000);
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, options.idle_threads);
  grpc::ResourceQuota quota(options.name);
  quota.SetMaxThreads(options.max_threads);
  builder.SetResourceQuota(quota);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<AccessLogFactory>());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));

  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen_address));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  log::Info("listening",
            {{"addr", options.listen_address}, {"port", absl::StrCat(port)}});

  std::mutex mutex;
  std::condition_variable stop_probe;
  bool stopping = false;
  std::thread prober([&] {
    bool last_ready = false;
    std::unique_lock<std::mutex> lock(mutex);
    while (!stopping) {
      lock.unlock();
      absl::Status ready = options.readiness_probe ? options.readiness_probe()
                                                   : absl::OkStatus();
      lock.lock();
      if (stopping) break;
      health->SetServingStatus(ready.ok());
      if (ready.ok() != last_ready) {
        if (ready.ok()) {
          log::Info("ready");
        } else {
          log::Warn("not ready", {{"reason", ready.message()}});
        }
        last_ready = ready.ok();
      }
      stop_probe.wait_for(lock,
                          absl::ToChronoNanoseconds(options.probe_interval));
    }
  });

  sigset_t signals = TerminationSignals();
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  log::Info("draining", {{"signal", absl::StrCat(signal_number)}});
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  stop_probe.notify_all();
  prober.join();
  if (options.on_stop) options.on_stop();
  health->Shutdown();  // NOT_SERVING from now on
  server->Shutdown(absl::ToChronoTime(absl::Now() + options.drain_timeout));
  server->Wait();
  log::Info("stopped");
  return absl::OkStatus();
}

}  // namespace chat
