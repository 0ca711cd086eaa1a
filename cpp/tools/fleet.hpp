// A fleet of simulated clients spread over the threads of an IoPool: R rooms of C clients.
// Each client lives on one thread for its whole life, so clients need no strand, and each
// thread's clients record into one ClientStats without a lock. The fleet opens clients a
// bounded number at a time, starts them together, closes them and sums their stats; the
// protocol spoken (Kasagi WebSocket, Redis pub/sub) is the client's business.
#pragma once
#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <vector>
#include <boost/asio/io_context.hpp>
#include "tools/client_stats.hpp"
#include "tools/io_pool.hpp"

namespace kasagi::tools {

class Shard;

// One simulated client. Every member function is called on its shard's thread.
class FleetClient {
 public:
  virtual ~FleetClient() = default;
  // Connects and joins its room; calls Shard::on_opened exactly once, when joined or failed.
  virtual void open() = 0;
  // Starts sending on a schedule beginning at `start`; stops at the end of the window.
  virtual void start(Clock::time_point start) = 0;
  // Stops sending and disconnects; calls Shard::on_closed exactly once, when done (at once
  // if the client is not connected).
  virtual void close() = 0;
};

struct FleetProgress {
  std::atomic<std::size_t> opened{0};
  std::atomic<std::size_t> failed{0};
  std::atomic<std::size_t> closed{0};
};

// The clients of one thread, what they measured, and the connect throttle.
class Shard {
 public:
  Shard(boost::asio::io_context& ioc, std::size_t max_opening, FleetProgress& progress)
      : ioc_(ioc), max_opening_(max_opening == 0 ? 1 : max_opening), progress_(progress) {}

  boost::asio::io_context& context() { return ioc_; }
  ClientStats& stats() { return stats_; }
  const Window& window() const { return window_; }

  void on_opened(bool ok);
  void on_closed() { progress_.closed.fetch_add(1); }

 private:
  friend class Fleet;
  void open_more();

  boost::asio::io_context& ioc_;
  std::size_t max_opening_;
  FleetProgress& progress_;
  ClientStats stats_;
  Window window_;
  std::vector<std::shared_ptr<FleetClient>> clients_;
  std::deque<std::size_t> to_open_;  // indexes into clients_
  std::size_t opening_ = 0;
};

// Makes the client with global `index` (0 .. rooms * per_room - 1) in room `room`.
using ClientFactory =
    std::function<std::shared_ptr<FleetClient>(Shard&, std::size_t room, std::size_t index)>;

class Fleet {
 public:
  // Client i of room r gets index r * per_room + i and lives on thread index % threads.
  Fleet(IoPool& pool, std::size_t rooms, std::size_t per_room, std::size_t connect_concurrency,
        const ClientFactory& make);

  std::size_t size() const { return total_; }

  // Opens every client, at most `connect_concurrency` at a time, and blocks the calling
  // thread (never an I/O thread) until each has joined or failed, or `timeout` has passed.
  // Returns the number joined.
  std::size_t open_all(Clock::duration timeout);

  // Starts every joined client on a schedule beginning at `start`, measuring in `window`.
  void start(Clock::time_point start, const Window& window);

  // Closes every client and blocks until all are closed or `timeout` has passed. Returns
  // the number closed.
  std::size_t close_all(Clock::duration timeout);

  // The sum of every thread's stats. Call only once the pool is stopped.
  ClientStats collect() const;

  std::size_t failed() const { return progress_.failed.load(); }

 private:
  std::vector<std::unique_ptr<Shard>> shards_;
  FleetProgress progress_;
  std::size_t total_ = 0;
};

}  // namespace kasagi::tools
