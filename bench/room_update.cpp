// Sans-I/O micro benchmark of the per-update path: decode a STATE_UPDATE frame, apply it with
// room::Room::update, and once per tick flush the coalesced delta (encoded once) to every
// member. One room of 10 players, each writing {x, t} once per tick, as bench/fanout.py's
// load does. No sockets, so the numbers are steady enough to compare two builds.
//
// Baseline, measured in the same run on the same frames: msgpack-c alone unpacks each frame
// and, once per tick, packs the tick's payloads into one map (what any server that speaks
// MessagePack must at least do). The ratio is what bench/room_update.py prints.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <variant>
#include <vector>
#include <msgpack.hpp>
#include "protocol/codec.hpp"
#include "room/room.hpp"

using namespace kasagi;
using Clock = room::Clock;

// Every operator new of the process is counted (Boost.JSON's default resource and the
// standard containers allocate through it; msgpack-c's zone calls malloc and is not).
std::size_t g_allocations = 0;

void* operator new(std::size_t size) {
  ++g_allocations;
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

constexpr int kPlayers = 10;
constexpr auto kTick = std::chrono::milliseconds(50);

struct SinkMember : room::Member {
  std::size_t frames = 0, bytes = 0;
  protocol::Format format() const override { return protocol::Format::msgpack; }
  void send(room::Outgoing frame) override {
    ++frames;
    bytes += frame.bytes->size();
  }
  void removed_from_room(std::uint64_t, const std::string&) override {}
};

// frames[tick][player]: the player's STATE_UPDATE of that tick.
std::vector<std::vector<std::string>> make_frames(int ticks) {
  std::vector<std::vector<std::string>> frames(ticks);
  for (int t = 0; t < ticks; ++t) {
    for (int p = 0; p < kPlayers; ++p) {
      protocol::Message m;
      m.type = protocol::Type::state_update;
      m.room_id = "room-42";
      m.payload = state::Object{{"x", t + 1}, {"t", std::int64_t(1'700'000'000'000'000'000) + t}};
      frames[t].push_back(protocol::encode(protocol::Format::msgpack, m));
    }
  }
  return frames;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Returns seconds for all frames through Room (decode, update, a flush per tick), and sets
// `allocations` to the operator new calls made meanwhile.
double run_room(const std::vector<std::vector<std::string>>& frames, std::size_t& allocations) {
  metrics::Metrics metrics;
  std::string error;
  auto rules = room::PathRules::parse({"/players/$self"}, error);
  room::RoomSettings settings;
  Clock::time_point now{};
  room::Room room("room-42", 1, settings, std::move(*rules), metrics, now);
  std::vector<std::shared_ptr<SinkMember>> members;
  for (int p = 0; p < kPlayers; ++p) {
    members.push_back(std::make_shared<SinkMember>());
    protocol::Message join;
    join.type = protocol::Type::join_room;
    join.room_id = "room-42";
    join.payload = state::Object{{"playerName", "bot"}};
    room.join(members.back(), join, now);
  }
  const std::size_t allocated_before = g_allocations;
  const auto start = Clock::now();
  for (const auto& tick : frames) {
    for (int p = 0; p < kPlayers; ++p) {
      auto decoded = protocol::decode(protocol::Format::msgpack, tick[p]);
      room.update(members[p], std::get<protocol::Message>(std::move(decoded)), now);
    }
    now += kTick;
    room.on_timer(now);
  }
  const double elapsed = seconds_since(start);
  allocations = g_allocations - allocated_before;
  if (members[0]->frames < frames.size()) std::abort();  // a delta per tick reached everyone
  return elapsed;
}

// Returns seconds for the same frames through msgpack-c alone.
double run_baseline(const std::vector<std::vector<std::string>>& frames) {
  std::size_t total = 0;
  const auto start = Clock::now();
  for (const auto& tick : frames) {
    msgpack::object_handle handles[kPlayers];
    for (int p = 0; p < kPlayers; ++p) handles[p] = msgpack::unpack(tick[p].data(), tick[p].size());
    msgpack::sbuffer out;
    msgpack::packer<msgpack::sbuffer> pk(out);
    pk.pack_map(kPlayers);
    for (int p = 0; p < kPlayers; ++p) {
      pk.pack(p);
      const auto& frame = handles[p].get().via.map;
      for (std::uint32_t i = 0; i < frame.size; ++i)
        if (frame.ptr[i].key.as<std::string_view>() == "payload") pk.pack(frame.ptr[i].val);
    }
    total += out.size();
  }
  const double elapsed = seconds_since(start);
  if (total == 0) std::abort();
  return elapsed;
}

}  // namespace

// Usage: room_update [ticks] [rounds]. Prints one line per round and the median ratio.
int main(int argc, char** argv) {
  const int ticks = argc > 1 ? std::atoi(argv[1]) : 20000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 7;
  const auto frames = make_frames(ticks);
  const double updates = double(ticks) * kPlayers;
  std::vector<double> ratios;
  for (int r = 0; r < rounds; ++r) {
    std::size_t allocations = 0;
    const double base = run_baseline(frames);
    const double kasagi = run_room(frames, allocations);
    ratios.push_back(kasagi / base);
    std::printf("round %d: room %.3f us/update (%.1f operator new), msgpack-c %.3f us/update, "
                "ratio %.2f\n",
                r + 1, kasagi / updates * 1e6, double(allocations) / updates, base / updates * 1e6,
                kasagi / base);
  }
  std::sort(ratios.begin(), ratios.end());
  std::printf("median ratio room / msgpack-c: %.2f\n", ratios[ratios.size() / 2]);
}
