// Token bucket: `rate` tokens per second on average, bursts of up to `burst`. Counts
// messages (allow) or bytes (charge after the fact, then wait out the debt).
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
    refill(now);
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

  // Takes `amount` tokens after the fact: the bucket may go into debt.
  void charge(double amount) { tokens_ -= amount; }

  // How long until the bucket holds a positive amount again (zero: it does now).
  Clock::duration wait(Clock::time_point now) {
    if (rate_ <= 0) return Clock::duration::zero();
    refill(now);
    if (tokens_ > 0) return Clock::duration::zero();
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>((1.0 - tokens_) / rate_));
  }

 private:
  void refill(Clock::time_point now) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  }

  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

}  // namespace kasagi::net
