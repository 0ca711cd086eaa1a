// A simulated client of the Redis pub/sub baseline: the same traffic shape as a Kasagi
// client, through redis-server. One connection SUBSCRIBEs to its room's channel, another
// PUBLISHes MessagePack {x, t} on the same schedule (a subscribed connection cannot
// publish). Every message received is counted and sized (RESP bytes and payload bytes);
// messages published by another client give a latency sample, now - t.
// Speaks RESP over Asio sockets, parsing replies with hiredis's reader: non-blocking,
// one thread per connection like every other client of the fleet.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <boost/asio/ip/tcp.hpp>
#include "tools/fleet.hpp"

namespace kasagi::tools {

struct RedisTarget {
  boost::asio::ip::tcp::endpoint endpoint;
  double rate = 20.0;              // publishes per second per client; 0 = subscribe only
  std::string channel_prefix;      // room r is channel <channel_prefix><r>
};

// `target` must outlive the client.
std::shared_ptr<FleetClient> make_redis_client(Shard& shard, const RedisTarget& target,
                                               std::size_t room, std::size_t index);

}  // namespace kasagi::tools
