// N io_contexts, each run by its own thread with concurrency hint 1: whatever is bound to
// one context runs on one thread, so it needs no strand and no lock.
#pragma once
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace kasagi::tools {

class IoPool {
 public:
  explicit IoPool(std::size_t threads) {
    if (threads == 0) threads = 1;
    for (std::size_t i = 0; i < threads; ++i) {
      contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
      guards_.emplace_back(contexts_.back()->get_executor());
    }
    for (auto& ctx : contexts_) threads_.emplace_back([c = ctx.get()] { c->run(); });
  }
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;
  ~IoPool() { stop(); }

  std::size_t size() const { return contexts_.size(); }
  boost::asio::io_context& context(std::size_t i) { return *contexts_[i]; }

  // Stops every context and joins its thread; pending handlers are not run. Idempotent.
  void stop() {
    guards_.clear();
    for (auto& ctx : contexts_) ctx->stop();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  using Guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<Guard> guards_;
  std::vector<std::thread> threads_;
};

}  // namespace kasagi::tools
