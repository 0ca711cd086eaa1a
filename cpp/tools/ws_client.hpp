// A simulated Kasagi client: one WebSocket connection to ws://HOST:PORT/sync that joins one
// room, sends STATE_UPDATE {x, t} on a jittered schedule (t: its steady-clock send time in
// ns) and measures every DELTA_UPDATE it receives: count, size, and for each other player
// entry carrying `t`, the latency from that send to now.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <boost/asio/ip/tcp.hpp>
#include "protocol/codec.hpp"
#include "tools/fleet.hpp"

namespace kasagi::tools {

struct WsTarget {
  boost::asio::ip::tcp::endpoint endpoint;
  std::string host;               // Host header
  protocol::Format format = protocol::Format::msgpack;
  double rate = 20.0;             // updates per second per client; 0 = listen only
  std::string room_prefix;        // room r is <room_prefix><r>
  std::size_t slot = 0;           // which server instance: its index in the --port list
};

// `target` must outlive the client.
std::shared_ptr<FleetClient> make_ws_client(Shard& shard, const WsTarget& target,
                                            std::size_t room, std::size_t index);

}  // namespace kasagi::tools
