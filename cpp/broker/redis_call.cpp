#include "broker/redis_call.hpp"

#include <hiredis/hiredis.h>

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

}  // namespace kasagi::broker
