#include "broker/redis_call.hpp"

#include <hiredis/hiredis.h>

#include <atomic>
#include <utility>

namespace kasagi::broker {

void RedisCall::complete(const redisReply* reply) {
  auto d = std::exchange(done, nullptr);
  if (!d) return;
  if (after_loss && reply != nullptr && reply->type == REDIS_REPLY_INTEGER && reply->integer == -1) {
    reply = nullptr;
  }
  d(reply);
}

std::uint64_t RedisCall::next_seq() {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace kasagi::broker
