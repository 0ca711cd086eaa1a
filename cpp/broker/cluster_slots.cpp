#include "broker/cluster_slots.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include "broker/redis_records.hpp"

namespace kasagi::broker {
namespace {

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), bit by bit: keys are short.
std::uint16_t crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (const char c : data) {
    crc ^= static_cast<std::uint16_t>(static_cast<unsigned char>(c) << 8);
    for (int i = 0; i < 8; ++i) {
      crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    }
  }
  return crc;
}

bool is_integer(const redisReply* r) { return r != nullptr && r->type == REDIS_REPLY_INTEGER; }

}  // namespace

std::uint16_t key_slot(std::string_view key) {
  if (const auto open = key.find('{'); open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return crc16(key) % kClusterSlots;
}

std::optional<SlotMap> SlotMap::parse(const redisReply& reply, const HostPort& asked) {
  if (reply.type != REDIS_REPLY_ARRAY) return std::nullopt;
  SlotMap map;
  map.slot_node_.fill(-1);
  for (std::size_t i = 0; i < reply.elements; ++i) {
    // [first slot, last slot, [master ip, port, id...], replicas...]
    const redisReply* range = reply.element[i];
    if (range->type != REDIS_REPLY_ARRAY || range->elements < 3) return std::nullopt;
    const redisReply* first = range->element[0];
    const redisReply* last = range->element[1];
    const redisReply* node = range->element[2];
    if (!is_integer(first) || !is_integer(last) || node->type != REDIS_REPLY_ARRAY ||
        node->elements < 2 || !is_integer(node->element[1])) {
      return std::nullopt;
    }
    if (first->integer < 0 || last->integer >= kClusterSlots || first->integer > last->integer ||
        node->element[1]->integer <= 0 || node->element[1]->integer > 65535) {
      return std::nullopt;
    }
    HostPort master{std::string(reply_text(*node->element[0])),
                    static_cast<std::uint16_t>(node->element[1]->integer)};
    if (master.host.empty()) master.host = asked.host;  // the node asked, by its own view
    std::fill(map.slot_node_.begin() + first->integer, map.slot_node_.begin() + last->integer + 1,
              map.node_index(std::move(master)));
  }
  return map;
}

const HostPort* SlotMap::master(std::uint16_t slot) const {
  const auto i = slot_node_[slot % kClusterSlots];
  return i < 0 ? nullptr : &nodes_[static_cast<std::size_t>(i)];
}

void SlotMap::moved(std::uint16_t slot, HostPort master) {
  slot_node_[slot % kClusterSlots] = node_index(std::move(master));
}

std::int16_t SlotMap::node_index(HostPort master) {
  auto it = std::find(nodes_.begin(), nodes_.end(), master);
  if (it == nodes_.end()) it = nodes_.insert(nodes_.end(), std::move(master));
  return static_cast<std::int16_t>(it - nodes_.begin());
}

std::vector<HostPort> SlotMap::masters() const {
  std::vector<HostPort> out;
  for (const auto i : slot_node_) {
    if (i < 0) continue;
    const HostPort& n = nodes_[static_cast<std::size_t>(i)];
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  return out;
}

}  // namespace kasagi::broker
