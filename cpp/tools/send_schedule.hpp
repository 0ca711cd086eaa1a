// When one client sends: `rate` times per second from `start`, beginning at a random phase
// within the first period, each send jittered by up to ±10 % of the period, so that a
// thousand clients never fire in lockstep. Jitter does not accumulate: slot k is at
// start + phase + k * period + jitter_k, so the average rate is exact.
#pragma once
#include <chrono>
#include <cstdint>
#include <random>
#include "tools/client_stats.hpp"

namespace kasagi::tools {

class SendSchedule {
 public:
  // `rate` must be > 0. `seed` makes each client's phase and jitter different.
  SendSchedule(Clock::time_point start, double rate, std::uint32_t seed)
      : rng_(seed), period_(std::chrono::duration<double>(1.0 / rate)) {
    std::uniform_real_distribution<double> phase(0.0, 1.0);
    origin_ = start + std::chrono::duration_cast<Clock::duration>(period_ * phase(rng_));
    next_ = slot(0);
  }

  // The time of the next send.
  Clock::time_point next() const { return next_; }

  // Moves past the send just made at `now`. Slots more than one period in the past are
  // skipped rather than sent in a burst; returns how many were skipped.
  std::uint64_t advance(Clock::time_point now) {
    ++k_;
    std::uint64_t skipped = 0;
    const auto behind = std::chrono::duration_cast<Clock::duration>(period_);
    while (slot_base(k_) + behind < now) {
      ++k_;
      ++skipped;
    }
    next_ = slot(k_);
    return skipped;
  }

 private:
  static constexpr double kJitter = 0.10;  // fraction of a period, either way

  Clock::time_point slot_base(std::uint64_t k) const {
    return origin_ + std::chrono::duration_cast<Clock::duration>(period_ * static_cast<double>(k));
  }
  Clock::time_point slot(std::uint64_t k) {
    std::uniform_real_distribution<double> jitter(-kJitter, kJitter);
    return slot_base(k) + std::chrono::duration_cast<Clock::duration>(period_ * jitter(rng_));
  }

  std::minstd_rand rng_;
  std::chrono::duration<double> period_;
  Clock::time_point origin_;
  Clock::time_point next_;
  std::uint64_t k_ = 0;
};

}  // namespace kasagi::tools
