// One io_context per I/O thread. Each connection and each room lives on one of them for
// its whole life, so its handlers always run on the same thread, in order: the context's
// own executor serializes them without a strand's lock. A message crosses threads only
// when a connection and its room were placed on different contexts.
//
// Why not one io_context run by N threads: every post then may wake another thread (a
// condition variable and an epoll interrupt per message), which measured as about a quarter
// of the server's CPU at 20,000 updates/s (docs/benchmarks.md).
#pragma once
#include <atomic>
#include <cstddef>
#include <memory>
#include <vector>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace kasagi::net {

class IoPool {
 public:
  using Executor = boost::asio::io_context::executor_type;

  explicit IoPool(std::size_t threads) {
    for (std::size_t i = 0; i < threads; ++i) {
      contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
      guards_.emplace_back(contexts_.back()->get_executor());
    }
  }

  std::size_t size() const { return contexts_.size(); }
  boost::asio::io_context& context(std::size_t i) { return *contexts_[i]; }

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
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<boost::asio::executor_work_guard<Executor>> guards_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace kasagi::net
