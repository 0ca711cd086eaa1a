// Runs one room on its strand: on one I/O thread (see io_pool.hpp), or, for a room whose type
// has hooks, on whichever hook thread is free. Every message for the room is posted to the
// strand, so the room's state is touched by one thread at a time and needs no locks.
//
// Authority across instances (DESIGN.md). The actor first claims the room's lease from the
// broker. Granted: it is the authority: it recovers the room from the broker's snapshot and
// log, runs the room::Room, appends each delta to the log (and the channel) and renews the
// lease. Refused: another instance is the authority and the actor is a Relay for the members
// connected here. A relay keeps trying to claim the lease, so when the authority dies it
// takes over; an authority that finds its lease gone is deposed and becomes a relay.
// Messages that arrive while the role is being decided wait in order.
//
// A server alone (no Redis, no broker shared in its process) has no broker: each room is
// its own authority from the start, with no lease, log or snapshot to keep.
#pragma once
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include "broker/broker.hpp"
#include "net/relay.hpp"
#include "net/remote_member.hpp"
#include "room/registry.hpp"
#include "room/room.hpp"

namespace kasagi::net {

struct Context;

// How rooms are shared through the broker (kasagi.config.Config documents each).
struct SharingSettings {
  std::chrono::milliseconds lease_ttl{3000};
  std::uint32_t snapshot_every = 100;                // versions
  std::chrono::milliseconds snapshot_interval{10'000};
  std::chrono::milliseconds empty_ttl{30'000};       // room_empty_ttl
};

class RoomActor : public std::enable_shared_from_this<RoomActor>,
                  public broker::Subscriber,
                  private room::RoomLink {
 public:
  // A strand: on an I/O thread's context (run by that thread alone) it costs a little on
  // posts only; on the hook pool's context (run by every hook thread) it keeps the room's
  // handlers one at a time while other rooms' run beside them.
  using Executor = boost::asio::strand<boost::asio::io_context::executor_type>;
  using Input = std::function<void(room::Inbox&, room::Clock::time_point)>;

  // `type`: the room's type (its rules replace `rules`; its hooks run here while this
  // instance is the authority), or null.
  RoomActor(Executor executor, Context& ctx, const std::string& id, std::uint64_t uid,
            const room::RoomSettings& settings, room::PathRules rules,
            std::shared_ptr<const room::RoomType> type = nullptr);
  ~RoomActor() override;

  const std::string& id() const { return id_; }
  std::uint64_t uid() const { return uid_; }
  Executor executor() const { return executor_; }  // the room's strand
  bool on_io_thread() const { return alone_; }      // else on the hook threads

  // Joins promised by Registry::acquire and not yet run (see room/registry.hpp).
  std::atomic<int> pending_joins{0};

  // Runs f(inbox, now) on the room's thread, against the room (authority) or the relay;
  // while the role is being decided, later. Callable from any thread.
  void post(Input f) {
    boost::asio::post(executor_, [self = shared_from_this(), f = std::move(f)]() mutable {
      self->run(std::move(f));
    });
  }

  // A client's message: as post(), but on the room's own thread (a connection moves to its
  // first room's thread) while this instance is the authority, runs it at once, with no
  // handler posted and no std::function allocated. The connection's order holds: its
  // earlier inputs were posted to this thread before the read that brought this one began.
  // Only from a session's read handler, never from inside the room (it would re-enter it).
  template <class F>
  void deliver(F&& f) {
    if (on_room_thread() && role_ == Role::authority) {
      const auto now = room::Clock::now();
      f(static_cast<room::Inbox&>(*room_), now);
      return after_event(now);
    }
    post(Input(std::forward<F>(f)));
  }

  // Runs f(room or nullptr when this instance is not the authority) on the room's thread.
  void inspect(std::function<void(const room::Room*)> f) {
    boost::asio::post(executor_, [self = shared_from_this(), f = std::move(f)] {
      f(self->role_ == Role::authority ? self->room_.get() : nullptr);
    });
  }

  // Subscribes to the room channel and claims the lease.
  void start();

  // broker::Subscriber (called on the broker's thread)
  void on_message(std::string message) override;
  void on_gap() override;

 private:
  enum class Role { claiming, loading, authority, relay, gone };

  void run(Input f);
  // Whether the caller may enter the room: inside its strand, or on the one thread that
  // runs its I/O context (where the strand's handlers cannot run meanwhile).
  bool on_room_thread() const {
    return alone_ ? executor_.get_inner_executor().running_in_this_thread()
                  : executor_.running_in_this_thread();
  }
  void after_event(room::Clock::time_point now);
  void arm(room::Clock::time_point deadline);
  void on_timer();
  bool empty() const;

  // Lease and role
  void claim();
  void on_claimed(broker::Status status, const std::string& token, const std::string& owner);
  void on_loaded(broker::Status status, broker::RoomLog log);
  void become_relay(const std::string& owner);
  void deposed(const std::string& why);
  void lease_tick();
  void run_waiting();
  void make_room(room::Clock::time_point now);  // room_, without its hooks yet
  void start_hooks(room::Clock::time_point now);
  void start_trace();  // records room_'s deltas if the server traces this room
  void stop_hooks(room::Clock::time_point now);

  // Authority side
  void on_delta(const protocol::Message& delta, const room::Frame& msgpack,
                const room::Sessions& created) override;
  void on_broadcast(const room::Frame& msgpack, const room::Member* except) override;
  void append(broker::OpEntry entry, std::string message);
  void on_appended(broker::Status status, std::uint64_t version, std::uint64_t generation);
  void dispose();
  template <class F>
  auto on_own_thread(F f);
  void save_snapshot(bool recovering);
  void on_snapshot_saved(broker::Status status, std::uint64_t version, bool recovering,
                         std::uint64_t generation);
  void on_input(const broker::ChannelMessage& msg);
  void expire_silent_relays(room::Clock::time_point now);
  void publish_resync();

  Executor executor_;
  const bool alone_;  // its context is an I/O thread's, run by that thread alone
  boost::asio::steady_timer timer_;        // the room's deadlines and empty-room disposal
  boost::asio::steady_timer lease_timer_;  // lease renewal / claims, heartbeats
  Context& ctx_;
  std::shared_ptr<broker::Broker> broker_;
  std::string id_;
  std::uint64_t uid_;
  room::RoomSettings settings_;
  room::PathRules rules_;
  std::shared_ptr<const room::RoomType> type_;

  Role role_ = Role::claiming;
  std::string token_;              // "instance/epoch" of the lease we hold (or last held)
  bool claim_in_flight_ = false;
  std::uint64_t generation_ = 0;   // bumped when the role changes: late callbacks are stale
  std::deque<Input> waiting_;      // inputs that arrived before the role was known
  std::unique_ptr<room::Room> room_;
  std::unique_ptr<Relay> relay_;
  std::vector<Relay::Handover> handover_;  // members to re-join once the room is loaded

  // Authority: the stream of appends. While the log is not known to be complete (an append
  // failed), deltas are not appended; a snapshot repairs it, then the deltas since that
  // snapshot are appended and ACKs resume.
  bool log_intact_ = true;
  std::uint64_t append_generation_ = 0;  // bumped when the log breaks
  bool repairing_ = false;
  std::vector<std::pair<broker::OpEntry, std::string>> backlog_;
  std::uint64_t snapshot_version_ = 0;
  // The version of the snapshot in the shared store (loaded, or saved since), if any: an
  // entry based on it may follow it rather than a log entry (OpEntry::after_snapshot).
  std::optional<std::uint64_t> stored_snapshot_;
  room::Clock::time_point snapshot_at_{};
  bool snapshot_due_ = false;

  // Authority: members on other instances, by instance, then connection.
  std::map<std::string, std::map<std::uint64_t, std::shared_ptr<RemoteMember>>> remote_;
  std::map<std::string, room::Clock::time_point> relay_seen_;

  room::Clock::time_point claiming_since_{};
  std::optional<room::Clock::time_point> empty_since_;
  std::optional<room::Clock::time_point> armed_for_;
};

}  // namespace kasagi::net
