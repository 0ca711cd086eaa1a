// How a Snapshot and an OpEntry are stored in Redis (the fields of room:{id}:snapshot and of
// each room:{id}:ops entry, numbers as decimal strings) and read back from replies.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include "broker/broker.hpp"

struct redisReply;

namespace kasagi::broker {

// The text of a string reply ("" for any other type).
std::string_view reply_text(const redisReply& r);

// Field/value pairs, flat, in the order HSET and XADD take them.
std::vector<std::string> snapshot_fields(const Snapshot& s);
std::vector<std::string> op_fields(const OpEntry& e);

// Returns the snapshot of an HGETALL reply, or nullopt for an empty one (no snapshot).
// Unknown fields are ignored; a missing one keeps its default.
std::optional<Snapshot> parse_snapshot(const redisReply& hgetall);

// Returns the entries of an XRANGE reply whose version is above `after`, oldest first.
std::vector<OpEntry> parse_ops(const redisReply& xrange, std::uint64_t after);

}  // namespace kasagi::broker
