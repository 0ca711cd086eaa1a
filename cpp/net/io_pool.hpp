// One io_context per I/O thread. Each room lives on one of them for its whole life, and so
// does each connection once it has joined its first room (WsSession moves it onto that
// room's context), so their handlers always run on the same thread, in order; a room's
// strand (RoomActor) never contends there, and a connection's reads run its room's code
// without posting. A message crosses threads only when a connection is in rooms of
// different contexts.
//
// Why not one io_context run by N threads: every post then may wake another thread (a
// condition variable and an epoll interrupt per message), which measured as about a quarter
// of the server's CPU at 20,000 updates/s (docs/benchmarks.md). The hook pool is the
// exception: one context run by all hook threads, each room on a strand, so that a hook that
// blocks holds up one thread and no other room (server.cpp).
#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace kasagi::net {

class IoPool {
 public:
  using Executor = boost::asio::io_context::executor_type;

  // `contexts` contexts, each to be run by `threads_per_context` threads (see run()).
  explicit IoPool(std::size_t contexts, int threads_per_context = 1) {
    for (std::size_t i = 0; i < contexts; ++i) {
      contexts_.push_back(std::make_unique<Context>(threads_per_context));
      guards_.emplace_back(contexts_.back()->get_executor());
    }
  }

  // A connection moved to another context keeps objects registered with the first one
  // (Beast's per-context stream registry, an unused timer): every context's handlers, and
  // with them the connections, are destroyed before any context is.
  ~IoPool() {
    for (auto& c : contexts_) c->shutdown();
  }
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  std::size_t size() const { return contexts_.size(); }

  // Whether `c` is one of this pool's contexts.
  bool owns(const boost::asio::io_context& c) const {
    for (const auto& mine : contexts_) {
      if (mine.get() == &c) return true;
    }
    return false;
  }
  boost::asio::io_context& context(std::size_t i) { return *contexts_[i]; }

  // Runs context `i` on the calling thread until stop(). With a batch wait, a busy thread
  // (a pass over what was ready ran kBusyPass handlers or more: a tick's sends, a burst of
  // messages) sleeps that long before it looks again, so the messages arriving meantime are
  // handled in one wake-up instead of one wake-up each (under load, putting a thread to
  // sleep and waking it was a quarter of the server's CPU: docs/benchmarks.md). A thread
  // that is not busy blocks in the reactor and wakes at the first event, so a lone request
  // and its reply are not delayed. Only for a context run by this one thread.
  void run(std::size_t i, std::chrono::microseconds batch_wait) {
    Context& io = *contexts_[i];
    if (batch_wait <= std::chrono::microseconds::zero()) {
      io.run();
      return;
    }
    while (!io.stopped()) {
      const std::size_t ran = io.poll();
      if (ran >= kBusyPass) {
        std::this_thread::sleep_for(batch_wait);
      } else if (ran == 0 && io.run_one() == 0) {
        return;
      }
    }
  }

  // The executor for a new connection or room: round robin over the contexts.
  Executor next() {
    return contexts_[next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size()]
        ->get_executor();
  }

  // Lets run() return once the handlers in flight are done, and stops every context.
  void stop() {
    for (auto& g : guards_) g.reset();
    for (auto& c : contexts_) c->stop();
  }

 private:
  static constexpr std::size_t kBusyPass = 8;

  // An io_context whose services can be shut down ahead of its destruction (which shuts
  // them down again, harmlessly).
  struct Context : boost::asio::io_context {
    using boost::asio::io_context::io_context;
    using boost::asio::execution_context::shutdown;
  };

  std::vector<std::unique_ptr<Context>> contexts_;
  std::vector<boost::asio::executor_work_guard<Executor>> guards_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace kasagi::net
