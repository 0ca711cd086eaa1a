// Token bucket: `rate` messages per second on average, bursts of up to `burst`.
#pragma once
#include <algorithm>
#include <chrono>

namespace kasagi::net {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  RateLimiter(double rate, double burst)
      : rate_(rate), burst_(std::max(burst, 1.0)), tokens_(burst_), last_(Clock::now()) {}

  // Takes one token. Returns true if the message may pass, false if it is over the limit.
  // A rate of 0 or less means unlimited.
  bool allow(Clock::time_point now) {
    if (rate_ <= 0) return true;
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

 private:
  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

}  // namespace kasagi::net
