#include "common/db_reader.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/db_errors.h"
#include "common/db_statements.h"
#include "common/ids.h"
#include "common/log.h"

namespace chat {
namespace {

constexpr int kMaxAttempts = 3;
// After a connection is refused, reads are answered UNAVAILABLE at once for
// this long rather than each waiting for a connection of its own.
constexpr absl::Duration kRefusedBackoff = absl::Milliseconds(250);
constexpr uint64_t kWakeTag = UINT64_MAX;

absl::Status Unavailable() {
  return absl::UnavailableError("database unavailable, retry later");
}

}  // namespace

template <>
int64_t DbColumnReader::Parse<int64_t>(absl::string_view text) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) return 0;
  return value;
}

template <>
int DbColumnReader::Parse<int>(absl::string_view text) {
  int value = 0;
  if (!absl::SimpleAtoi(text, &value)) return 0;
  return value;
}

template <>
bool DbColumnReader::Parse<bool>(absl::string_view text) {
  return text == "t";
}

class DbReader::Loop {
 public:
  // Owns `count` connections to options.url.
  Loop(const Options& options, int count);
  // Answers every read not yet answered with UNAVAILABLE, then stops.
  ~Loop();

  void Add(Pending read);

 private:
  struct Connection {
    int index = 0;
    PGconn* conn = nullptr;  // null while closed
    bool writing = false;    // watching for EPOLLOUT
    std::deque<Pending> running;
    // The front read's answer so far: results seen (the setting, the
    // statement), its rows, the first error.
    int results = 0;
    std::optional<DbRows> rows;
    absl::Status error;
  };

  void Run();
  void Start(std::deque<Pending> reads);
  void Dispatch(Pending read);
  bool Send(Connection& conn, Pending& read);
  void Flush(Connection& conn);
  void Receive(Connection& conn);
  void Break(Connection& conn, const char* why);
  absl::Status Connect(Connection& conn);
  void Watch(Connection& conn, bool write);

  const Options& options_;
  int epoll_ = -1;
  int wake_ = -1;  // an eventfd: reads were queued, or stop
  std::vector<std::unique_ptr<Connection>> connections_;  // the thread's
  absl::Time last_refused_ = absl::InfinitePast();        // the thread's

  std::mutex mutex_;
  std::deque<Pending> queued_;  // guarded by mutex_
  bool stopping_ = false;       // guarded by mutex_
  std::thread thread_;
};

std::unique_ptr<DbReader> DbReader::Create(Options options) {
  return std::unique_ptr<DbReader>(new DbReader(std::move(options)));
}

DbReader::DbReader(Options options) : options_(std::move(options)) {
  for (const PreparedStatement& statement : options_.statements) {
    if (statement.generic_plan) generic_plans_.insert(statement.name);
  }
  options_.connections = std::max(1, options_.connections);
  const int threads = std::clamp(options_.threads, 1, options_.connections);
  for (int t = 0; t < threads; ++t) {
    loops_.push_back(std::make_unique<Loop>(
        options_, options_.connections / threads +
                      (t < options_.connections % threads ? 1 : 0)));
  }
}

DbReader::~DbReader() = default;

DbReader::Loop::Loop(const Options& options, int count) : options_(options) {
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kWakeTag;
  epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &event);
  for (int i = 0; i < count; ++i) {
    connections_.push_back(std::make_unique<Connection>());
    connections_.back()->index = i;
  }
  thread_ = std::thread([this] { Run(); });
}

DbReader::Loop::~Loop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  const uint64_t one = 1;
  (void)!write(wake_, &one, sizeof(one));
  thread_.join();
  close(wake_);
  close(epoll_);
}

void DbReader::Submit(absl::string_view user_id, const char* statement,
                      std::vector<std::optional<std::string>> arguments,
                      Done done) {
  // A user id comes from a verified token; anything else is no account.
  if (!IsUuid(user_id)) {
    std::move(done)(std::optional<DbRows>());
    return;
  }
  for (const std::optional<std::string>& argument : arguments) {
    // libpq takes text parameters as C strings.
    if (argument && argument->find('\0') != std::string::npos) {
      std::move(done)(
          absl::InvalidArgumentError("text must not contain NUL bytes"));
      return;
    }
  }
  Pending read{std::string(user_id),
               generic_plans_.contains(statement)
                   ? db_internal::kSetUserIfExistsGeneric
                   : db_internal::kSetUserIfExists,
               statement, std::move(arguments), std::move(done)};
  loops_[next_loop_.fetch_add(1, std::memory_order_relaxed) % loops_.size()]
      ->Add(std::move(read));
}

void DbReader::Loop::Add(Pending read) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      // One wake-up for reads queued together: the thread takes them all.
      wake = queued_.empty();
      queued_.push_back(std::move(read));
      if (!wake) return;
    }
  }
  if (!wake) {
    std::move(read.done)(Unavailable());
    return;
  }
  const uint64_t one = 1;
  (void)!write(wake_, &one, sizeof(one));
}

void DbReader::Loop::Run() {
  epoll_event events[64];
  for (;;) {
    const int n = epoll_wait(epoll_, events, 64, -1);
    if (n < 0 && errno != EINTR) {
      // Only a bug gets here (a closed descriptor): fail loudly rather than
      // leave every read unanswered.
      log::Error("database reader stopped", {{"error", strerror(errno)}});
      std::abort();
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 != kWakeTag) {
        Connection& conn = *connections_[events[i].data.u64];
        if (conn.conn == nullptr) continue;  // closed earlier in this batch
        if (events[i].events & EPOLLOUT) Flush(conn);
        if (conn.conn != nullptr &&
            (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
          Receive(conn);
        }
        continue;
      }
      uint64_t count;
      (void)!read(wake_, &count, sizeof(count));
      std::deque<Pending> reads;
      bool stopping;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        reads.swap(queued_);
        stopping = stopping_;
      }
      if (stopping) {
        for (Pending& read : reads) std::move(read.done)(Unavailable());
        for (auto& conn : connections_) Break(*conn, nullptr);
        return;
      }
      Start(std::move(reads));
    }
  }
}

void DbReader::Loop::Start(std::deque<Pending> reads) {
  for (Pending& read : reads) Dispatch(std::move(read));
  for (auto& conn : connections_) {
    if (conn->conn != nullptr && !conn->writing) Flush(*conn);
  }
}

void DbReader::Loop::Dispatch(Pending read) {
  for (;;) {
    // The connection with the fewest reads running.
    Connection* best = connections_.front().get();
    for (auto& conn : connections_) {
      if (conn->running.size() < best->running.size()) best = conn.get();
    }
    if (best->conn == nullptr) {
      absl::Status connected = Connect(*best);
      if (!connected.ok()) {
        std::move(read.done)(connected);
        return;
      }
    }
    if (Send(*best, read)) {
      best->running.push_back(std::move(read));
      return;
    }
    // A broken connection: its reads go again, and so does this one.
    Break(*best, "send");
    if (++read.attempts >= kMaxAttempts) {
      std::move(read.done)(Unavailable());
      return;
    }
  }
}

absl::Status DbReader::Loop::Connect(Connection& conn) {
  if (absl::Now() - last_refused_ < kRefusedBackoff) return Unavailable();
  // This thread waits for the connection: never longer than a few seconds,
  // unless the URL says otherwise.
  const char* keywords[] = {"connect_timeout", "dbname", nullptr};
  const char* values[] = {"5", options_.url.c_str(), nullptr};
  PGconn* pg = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  auto refuse = [&](const char* what) {
    log::Warn("database connection failed",
              {{"step", what}, {"error", PQerrorMessage(pg)}});
    PQfinish(pg);
    last_refused_ = absl::Now();
    return Unavailable();
  };
  if (PQstatus(pg) != CONNECTION_OK) return refuse("connect");
  auto run = [&](const char* name, const char* sql) {
    PGresult* result = name == nullptr ? PQexec(pg, sql)
                                       : PQprepare(pg, name, sql, 0, nullptr);
    const ExecStatusType status = PQresultStatus(result);
    PQclear(result);
    return status == PGRES_COMMAND_OK;
  };
  if (options_.statement_timeout > absl::ZeroDuration() &&
      !run(nullptr,
           absl::StrCat("SET statement_timeout = ",
                        absl::ToInt64Milliseconds(options_.statement_timeout))
               .c_str())) {
    return refuse("settings");
  }
  if (!run(db_internal::kSetUserIfExists, db_internal::kSetUserIfExistsSql) ||
      !run(db_internal::kSetUserIfExistsGeneric,
           db_internal::kSetUserIfExistsGenericSql)) {
    return refuse("prepare");
  }
  for (const PreparedStatement& statement : options_.statements) {
    if (!run(statement.name, statement.sql)) return refuse("prepare");
  }
  if (PQsetnonblocking(pg, 1) != 0 || PQenterPipelineMode(pg) != 1) {
    return refuse("pipeline mode");
  }
  conn.conn = pg;
  conn.writing = false;
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = static_cast<uint64_t>(conn.index);
  epoll_ctl(epoll_, EPOLL_CTL_ADD, PQsocket(pg), &event);
  return absl::OkStatus();
}

bool DbReader::Loop::Send(Connection& conn, Pending& read) {
  const char* user[] = {read.user_id.c_str()};
  std::vector<const char*> values;
  values.reserve(read.arguments.size());
  for (const std::optional<std::string>& argument : read.arguments) {
    values.push_back(argument ? argument->c_str() : nullptr);
  }
  return PQsendQueryPrepared(conn.conn, read.set_user, 1, user, nullptr,
                             nullptr, 0) == 1 &&
         PQsendQueryPrepared(conn.conn, read.statement,
                             static_cast<int>(values.size()), values.data(),
                             nullptr, nullptr, 0) == 1 &&
         PQpipelineSync(conn.conn) == 1;
}

void DbReader::Loop::Watch(Connection& conn, bool write) {
  if (conn.writing == write) return;
  conn.writing = write;
  epoll_event event{};
  event.events = EPOLLIN | (write ? static_cast<uint32_t>(EPOLLOUT) : 0u);
  event.data.u64 = static_cast<uint64_t>(conn.index);
  epoll_ctl(epoll_, EPOLL_CTL_MOD, PQsocket(conn.conn), &event);
}

void DbReader::Loop::Flush(Connection& conn) {
  const int flushed = PQflush(conn.conn);
  if (flushed < 0) {
    Break(conn, "send");
    return;
  }
  Watch(conn, flushed == 1);
}

void DbReader::Loop::Receive(Connection& conn) {
  if (PQconsumeInput(conn.conn) != 1) {
    Break(conn, "receive");
    return;
  }
  bool ended = false;  // the last result was the end of a statement's
  while (!conn.running.empty() && PQisBusy(conn.conn) == 0) {
    PGresult* result = PQgetResult(conn.conn);
    if (result == nullptr) {
      // One NULL ends a statement's results; a second says nothing more has
      // come (a connection that broke).
      if (ended) break;
      ended = true;
      continue;
    }
    ended = false;
    switch (PQresultStatus(result)) {
      case PGRES_PIPELINE_SYNC: {
        PQclear(result);
        Pending read = std::move(conn.running.front());
        conn.running.pop_front();
        Rows answer = std::optional<DbRows>();
        if (!conn.error.ok()) {
          answer = std::move(conn.error);
        } else if (conn.rows && conn.rows->size() > 0) {
          answer = std::move(conn.rows);
        }
        conn.results = 0;
        conn.rows.reset();
        conn.error = absl::OkStatus();
        std::move(read.done)(std::move(answer));
        break;
      }
      case PGRES_TUPLES_OK:
        // The setting's row proves the account; the statement's rows show
        // only under it, so they alone are the answer.
        if (conn.results++ == 1) {
          conn.rows.emplace(result);
        } else {
          PQclear(result);
        }
        break;
      case PGRES_PIPELINE_ABORTED:  // after an error, already kept
        ++conn.results;
        PQclear(result);
        break;
      default: {
        ++conn.results;
        const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
        if (conn.error.ok()) {
          conn.error = StatusFromSqlState(state != nullptr ? state : "",
                                          PQresultErrorMessage(result));
        }
        PQclear(result);
        break;
      }
    }
  }
  if (conn.conn != nullptr && PQstatus(conn.conn) == CONNECTION_BAD) {
    Break(conn, "status");
  }
}

void DbReader::Loop::Break(Connection& conn, const char* why) {
  if (conn.conn != nullptr) {
    if (why != nullptr) {
      log::Warn("database connection lost",
                {{"step", why}, {"error", PQerrorMessage(conn.conn)}});
    }
    epoll_ctl(epoll_, EPOLL_CTL_DEL, PQsocket(conn.conn), nullptr);
    PQfinish(conn.conn);
    conn.conn = nullptr;
  }
  conn.writing = false;
  conn.results = 0;
  conn.rows.reset();
  conn.error = absl::OkStatus();
  std::deque<Pending> again;
  for (Pending& read : conn.running) {
    // Only reads: sending one again cannot do anything twice.
    if (why != nullptr && ++read.attempts < kMaxAttempts) {
      again.push_back(std::move(read));
    } else {
      std::move(read.done)(Unavailable());
    }
  }
  conn.running.clear();
  if (!again.empty()) Start(std::move(again));
}

}  // namespace chat
