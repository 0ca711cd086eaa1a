#include "broker/memory_broker.hpp"

#include <boost/asio/post.hpp>

namespace kasagi::broker {

MemoryBroker::MemoryBroker(BrokerOptions options)
    : options_(std::move(options)),
      guard_(io_.get_executor()),
      thread_([this] { io_.run(); }) {}

MemoryBroker::~MemoryBroker() { shutdown(); }

void MemoryBroker::shutdown() {
  if (!thread_.joinable()) return;
  guard_.reset();
  io_.stop();
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();
  } else {
    thread_.join();
  }
}

template <class F>
void MemoryBroker::run(F&& f) {
  boost::asio::post(io_, std::forward<F>(f));
}

bool MemoryBroker::holds(RoomData& r, const std::string& token) {
  if (r.lease && r.lease->expires <= Clock::now()) r.lease.reset();
  return r.lease && r.lease->token == token;
}

void MemoryBroker::deliver(RoomData& r, const std::string& message) {
  std::erase_if(r.subscribers, [](const auto& w) { return w.expired(); });
  for (const auto& w : r.subscribers) {
    if (auto s = w.lock()) s->on_message(message);
  }
}

void MemoryBroker::claim(const std::string& room, const std::string& token,
                         std::chrono::milliseconds ttl, Claimed done) {
  run([this, room, token, ttl, done = std::move(done)] {
    auto& r = rooms_[room];
    holds(r, token);  // drops an expired lease
    if (!r.lease || r.lease->token == token) {
      r.lease = Lease{token, Clock::now() + ttl};
      return done(Status::ok, token);
    }
    done(Status::fenced, r.lease->token);
  });
}

void MemoryBroker::release(const std::string& room, const std::string& token) {
  run([this, room, token] {
    auto it = rooms_.find(room);
    if (it == rooms_.end() || !holds(it->second, token)) return;
    it->second.lease.reset();
    // Nothing outlives the process anyway, and a long-running server would otherwise keep
    // every room it ever had: a room nobody serves any more is forgotten.
    std::erase_if(it->second.subscribers, [](const auto& w) { return w.expired(); });
    if (it->second.subscribers.empty()) rooms_.erase(it);
  });
}

void MemoryBroker::load(const std::string& room, Loaded done) {
  run([this, room, done = std::move(done)] {
    auto& r = rooms_[room];
    RoomLog log;
    log.snapshot = r.snapshot;
    const std::uint64_t after = r.snapshot ? r.snapshot->version : 0;
    for (const auto& e : r.ops) {
      if (e.version > after) log.ops.push_back(e);
    }
    done(Status::ok, std::move(log));
  });
}

void MemoryBroker::append(const std::string& room, const std::string& token, OpEntry entry,
                          std::string message, Done done) {
  run([this, room, token, entry = std::move(entry), message = std::move(message),
       done = std::move(done)]() mutable {
    auto& r = rooms_[room];
    if (!holds(r, token)) return done(Status::fenced);
    r.ops.push_back(std::move(entry));
    while (r.ops.size() > options_.ops_max_len) r.ops.pop_front();
    deliver(r, message);
    done(Status::ok);
  });
}

void MemoryBroker::save_snapshot(const std::string& room, const std::string& token,
                                 Snapshot snapshot, Done done) {
  run([this, room, token, snapshot = std::move(snapshot), done = std::move(done)]() mutable {
    auto& r = rooms_[room];
    if (!holds(r, token)) return done(Status::fenced);
    r.snapshot = std::move(snapshot);
    done(Status::ok);
  });
}

void MemoryBroker::publish(const std::string& room, std::string message) {
  run([this, room, message = std::move(message)] { deliver(rooms_[room], message); });
}

void MemoryBroker::subscribe(const std::string& room, std::weak_ptr<Subscriber> subscriber) {
  run([this, room, subscriber = std::move(subscriber)] {
    rooms_[room].subscribers.push_back(subscriber);
  });
}

void MemoryBroker::unsubscribe(const std::string& room, const Subscriber* subscriber) {
  run([this, room, subscriber] {
    auto it = rooms_.find(room);
    if (it == rooms_.end()) return;
    std::erase_if(it->second.subscribers, [subscriber](const auto& w) {
      auto s = w.lock();
      return !s || s.get() == subscriber;
    });
  });
}

}  // namespace kasagi::broker
