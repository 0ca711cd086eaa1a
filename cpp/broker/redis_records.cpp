#include "broker/redis_records.hpp"

#include <hiredis/hiredis.h>

#include <charconv>

namespace kasagi::broker {
namespace {

std::uint64_t number(std::string_view s) {
  std::uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// Calls f(name, value) for each pair of a flat field/value array.
template <class F>
void for_each_field(const redisReply& array, F f) {
  if (array.type != REDIS_REPLY_ARRAY) return;
  for (std::size_t i = 0; i + 1 < array.elements; i += 2) {
    f(reply_text(*array.element[i]), reply_text(*array.element[i + 1]));
  }
}

}  // namespace

std::string_view reply_text(const redisReply& r) {
  return r.type == REDIS_REPLY_STRING ? std::string_view(r.str, r.len) : std::string_view{};
}

std::vector<std::string> snapshot_fields(const Snapshot& s) {
  return {"data", s.data,
          "version", std::to_string(s.version),
          "tick", std::to_string(s.tick),
          "epoch", s.epoch,
          "ts", std::to_string(s.ts),
          "sessions", s.sessions};
}

std::vector<std::string> op_fields(const OpEntry& e) {
  return {"data", e.data,
          "version", std::to_string(e.version),
          "base", std::to_string(e.base),
          "tick", std::to_string(e.tick),
          "epoch", e.epoch,
          "sessions", e.sessions};
}

std::optional<Snapshot> parse_snapshot(const redisReply& hgetall) {
  if (hgetall.type != REDIS_REPLY_ARRAY || hgetall.elements == 0) return std::nullopt;
  Snapshot s;
  for_each_field(hgetall, [&s](std::string_view name, std::string_view value) {
    if (name == "data") s.data = value;
    else if (name == "version") s.version = number(value);
    else if (name == "tick") s.tick = number(value);
    else if (name == "epoch") s.epoch = value;
    else if (name == "ts") s.ts = number(value);
    else if (name == "sessions") s.sessions = value;
  });
  return s;
}

std::vector<OpEntry> parse_ops(const redisReply& xrange, std::uint64_t after) {
  std::vector<OpEntry> out;
  if (xrange.type != REDIS_REPLY_ARRAY) return out;
  for (std::size_t i = 0; i < xrange.elements; ++i) {
    const redisReply& item = *xrange.element[i];  // [id, [field, value, ...]]
    if (item.type != REDIS_REPLY_ARRAY || item.elements != 2) continue;
    OpEntry e;
    for_each_field(*item.element[1], [&e](std::string_view name, std::string_view value) {
      if (name == "data") e.data = value;
      else if (name == "version") e.version = number(value);
      else if (name == "base") e.base = number(value);
      else if (name == "tick") e.tick = number(value);
      else if (name == "epoch") e.epoch = value;
      else if (name == "sessions") e.sessions = value;
    });
    if (e.version > after) out.push_back(std::move(e));
  }
  return out;
}

}  // namespace kasagi::broker
