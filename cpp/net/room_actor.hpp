// Runs one room::Room on one I/O thread (see io_pool.hpp): every message for the room is
// posted there, so the room's state is touched by one thread only and needs no locks. Owns the room's single
// timer (tick flush, grace expiry, empty-room disposal).
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include "room/registry.hpp"
#include "room/room.hpp"

namespace kasagi::net {

class RoomActor : public std::enable_shared_from_this<RoomActor> {
 public:
  using Executor = boost::asio::io_context::executor_type;

  RoomActor(Executor executor, room::Registry<RoomActor>& registry,
            const std::string& id, std::uint64_t uid, const room::RoomSettings& settings,
            room::PathRules rules, metrics::Metrics& metrics, room::Clock::duration empty_ttl);
  ~RoomActor();

  const std::string& id() const { return id_; }
  std::uint64_t uid() const { return uid_; }

  // Joins promised by Registry::acquire and not yet run (see room/registry.hpp).
  std::atomic<int> pending_joins{0};

  // Runs f(room, now) on the room's thread, then re-arms the timer. Callable from any thread.
  template <class F>
  void post(F&& f) {
    boost::asio::post(executor_, [self = shared_from_this(), f = std::forward<F>(f)]() mutable {
      const auto now = room::Clock::now();
      f(self->room_, now);
      self->after_event(now);
    });
  }

  // Starts the empty-room countdown of a room nobody has joined yet.
  void start();

 private:
  void after_event(room::Clock::time_point now);
  void arm(room::Clock::time_point deadline);
  void on_timer();

  Executor executor_;
  boost::asio::steady_timer timer_;
  room::Registry<RoomActor>& registry_;
  metrics::Metrics& metrics_;
  std::string id_;
  std::uint64_t uid_;
  room::Room room_;
  room::Clock::duration empty_ttl_;
  std::optional<room::Clock::time_point> empty_since_;
  std::optional<room::Clock::time_point> armed_for_;
  bool disposed_ = false;
};

}  // namespace kasagi::net
