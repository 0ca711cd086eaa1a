// The rooms of one server, by id. Thread-safe: sessions on any thread look rooms up; a room
// removes itself when it has stayed empty long enough. Generic over the actor type so it
// stays free of I/O (net::RoomActor is the one used).
//
// The race it closes: a session finds a room and is about to post a join while the room
// decides it is empty and goes away. acquire() and try_remove() both run under the lock,
// and a room counts the joins it has been promised (pending), so it only goes away when
// nobody is on the way in.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace kasagi::room {

template <class Actor>
class Registry {
 public:
  using Factory = std::function<std::shared_ptr<Actor>(const std::string& id, std::uint64_t uid)>;

  Registry(std::size_t max_rooms, Factory factory)
      : max_rooms_(max_rooms), factory_(std::move(factory)) {}

  // Returns the room `id`, creating it if needed, with its pending-join count raised by one
  // (the caller must post the join, which lowers it). Returns nullptr when the room does not
  // exist and max_rooms are alive.
  std::shared_ptr<Actor> acquire(const std::string& id) {
    std::lock_guard lock(mutex_);
    auto it = rooms_.find(id);
    if (it == rooms_.end()) {
      if (rooms_.size() >= max_rooms_) return nullptr;
      it = rooms_.emplace(id, factory_(id, ++last_uid_)).first;
    }
    it->second->pending_joins.fetch_add(1, std::memory_order_relaxed);
    return it->second;
  }

  // Removes `actor` if it is still the room registered under its id and no join is pending
  // (`still_empty` is checked under the lock too). Returns true if it was removed.
  bool try_remove(const std::string& id, const Actor* actor, const std::function<bool()>& still_empty) {
    std::lock_guard lock(mutex_);
    auto it = rooms_.find(id);
    if (it == rooms_.end() || it->second.get() != actor) return false;
    if (actor->pending_joins.load(std::memory_order_relaxed) != 0 || !still_empty()) return false;
    rooms_.erase(it);
    return true;
  }

  // Returns the room `id` or nullptr, without creating it.
  std::shared_ptr<Actor> find(const std::string& id) const {
    std::lock_guard lock(mutex_);
    auto it = rooms_.find(id);
    return it == rooms_.end() ? nullptr : it->second;
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return rooms_.size();
  }

  // Removes every room (server shutdown).
  void clear() {
    std::unordered_map<std::string, std::shared_ptr<Actor>> gone;
    {
      std::lock_guard lock(mutex_);
      gone.swap(rooms_);
    }
  }

 private:
  mutable std::mutex mutex_;
  std::size_t max_rooms_;
  Factory factory_;
  std::uint64_t last_uid_ = 0;
  std::unordered_map<std::string, std::shared_ptr<Actor>> rooms_;
};

}  // namespace kasagi::room
