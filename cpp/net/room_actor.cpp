#include "net/room_actor.hpp"

#include "telemetry/log.hpp"

namespace kasagi::net {

RoomActor::RoomActor(Executor executor, room::Registry<RoomActor>& registry,
                     const std::string& id, std::uint64_t uid,
                     const room::RoomSettings& settings, room::PathRules rules,
                     metrics::Metrics& metrics, room::Clock::duration empty_ttl)
    : executor_(executor),
      timer_(executor_),
      registry_(registry),
      metrics_(metrics),
      id_(id),
      uid_(uid),
      room_(id, uid, settings, std::move(rules), metrics, room::Clock::now()),
      empty_ttl_(empty_ttl) {
  metrics_.rooms.fetch_add(1, std::memory_order_relaxed);
  log::debug("room " + id_ + " created");
}

RoomActor::~RoomActor() { metrics_.rooms.fetch_sub(1, std::memory_order_relaxed); }

void RoomActor::start() {
  post([](room::Room&, room::Clock::time_point) {});
}

void RoomActor::after_event(room::Clock::time_point now) {
  if (disposed_) return;
  if (room_.empty()) {
    if (!empty_since_) empty_since_ = now;
  } else {
    empty_since_.reset();
  }
  std::optional<room::Clock::time_point> deadline = room_.next_deadline();
  if (empty_since_) {
    const auto dispose_at = *empty_since_ + empty_ttl_;
    if (!deadline || dispose_at < *deadline) deadline = dispose_at;
  }
  if (deadline) arm(*deadline);
}

void RoomActor::arm(room::Clock::time_point deadline) {
  if (armed_for_ && *armed_for_ <= deadline) return;  // an earlier wake-up is already set
  armed_for_ = deadline;
  timer_.expires_at(deadline);  // cancels a later wait, whose handler then sees the new expiry
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec == boost::asio::error::operation_aborted) return;
    self->on_timer();
  });
}

void RoomActor::on_timer() {
  const auto now = room::Clock::now();
  armed_for_.reset();
  room_.on_timer(now);
  if (empty_since_ && room_.empty() && now >= *empty_since_ + empty_ttl_) {
    if (registry_.try_remove(id_, this, [this] { return room_.empty(); })) {
      disposed_ = true;
      log::debug("room " + id_ + " discarded after staying empty");
      return;
    }
    empty_since_ = now;  // a join is on its way; look again later
  }
  after_event(now);
}

}  // namespace kasagi::net
