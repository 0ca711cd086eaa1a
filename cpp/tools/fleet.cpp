#include "tools/fleet.hpp"

#include <thread>
#include <boost/asio/post.hpp>

namespace kasagi::tools {

namespace asio = boost::asio;

// ---------------------------------------------------------------------------------------
// Shard: runs on its own thread
// ---------------------------------------------------------------------------------------

void Shard::on_opened(bool ok) {
  --opening_;
  (ok ? progress_.opened : progress_.failed).fetch_add(1);
  open_more();
}

void Shard::open_more() {
  while (opening_ < max_opening_ && !to_open_.empty()) {
    const std::size_t i = to_open_.front();
    to_open_.pop_front();
    ++opening_;
    clients_[i]->open();
  }
}

// ---------------------------------------------------------------------------------------
// Fleet: called from the main thread
// ---------------------------------------------------------------------------------------

Fleet::Fleet(IoPool& pool, std::size_t rooms, std::size_t per_room,
             std::size_t connect_concurrency, const ClientFactory& make)
    : total_(rooms * per_room) {
  const std::size_t n = pool.size();
  const std::size_t per_shard = (connect_concurrency + n - 1) / n;
  for (std::size_t s = 0; s < n; ++s)
    shards_.push_back(std::make_unique<Shard>(pool.context(s), per_shard, progress_));
  for (std::size_t room = 0; room < rooms; ++room) {
    for (std::size_t i = 0; i < per_room; ++i) {
      const std::size_t index = room * per_room + i;
      Shard& shard = *shards_[index % n];
      shard.to_open_.push_back(shard.clients_.size());
      shard.clients_.push_back(make(shard, room, index));
    }
  }
}

namespace {

// Polls `done` every 20 ms until it holds or `timeout` passes; returns whether it held.
template <class Done>
bool wait_until(Done done, Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace

std::size_t Fleet::open_all(Clock::duration timeout) {
  for (auto& shard : shards_) asio::post(shard->context(), [s = shard.get()] { s->open_more(); });
  wait_until([&] { return progress_.opened.load() + progress_.failed.load() >= total_; }, timeout);
  return progress_.opened.load();
}

void Fleet::start(Clock::time_point start, const Window& window) {
  for (auto& shard : shards_) {
    asio::post(shard->context(), [s = shard.get(), start, window] {
      s->window_ = window;
      for (auto& c : s->clients_) c->start(start);
    });
  }
}

std::size_t Fleet::close_all(Clock::duration timeout) {
  for (auto& shard : shards_) {
    asio::post(shard->context(), [s = shard.get()] {
      s->to_open_.clear();  // clients never opened are closed by close() below
      for (auto& c : s->clients_) c->close();
    });
  }
  wait_until([&] { return progress_.closed.load() >= total_; }, timeout);
  return progress_.closed.load();
}

ClientStats Fleet::collect() const {
  ClientStats sum;
  for (const auto& shard : shards_) sum.merge(shard->stats_);
  return sum;
}

}  // namespace kasagi::tools
