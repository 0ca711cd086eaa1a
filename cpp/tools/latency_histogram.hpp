// A log-linear latency histogram in microseconds: exact below 256 µs, then 128 sub-buckets
// per power of two (relative error under 0.8 %). Fixed size, no allocation while recording,
// mergeable: every I/O thread records into its own and the totals are summed at the end.
#pragma once
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace kasagi::tools {

class LatencyHistogram {
 public:
  // Records one sample, in microseconds; a negative sample counts as 0. Cost: O(1).
  void record(std::int64_t us) {
    const std::uint64_t v = us < 0 ? 0 : static_cast<std::uint64_t>(us);
    ++counts_[index(v)];
    ++total_;
    if (v > max_) max_ = v;
  }

  void merge(const LatencyHistogram& other) {
    for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    if (other.max_ > max_) max_ = other.max_;
  }

  std::uint64_t count() const { return total_; }
  std::uint64_t max() const { return max_; }

  // Returns the smallest recorded value (µs, the middle of its bucket, never above the
  // maximum) such that a fraction `q` of the samples are at or below it; 0 when empty.
  double quantile(double q) const {
    if (total_ == 0) return 0.0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    if (rank < 1) rank = 1;
    if (rank > total_) rank = total_;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        const double mid = static_cast<double>(lower_bound(i)) +
                           static_cast<double>(width(i) - 1) / 2.0;
        return mid < static_cast<double>(max_) ? mid : static_cast<double>(max_);
      }
    }
    return static_cast<double>(max_);
  }

 private:
  static constexpr std::size_t kLinear = 256;  // values below this are their own bucket
  static constexpr std::size_t kSub = 128;     // sub-buckets per power of two above it
  static constexpr std::size_t kBuckets = kLinear + (64 - 8) * kSub;

  static std::size_t index(std::uint64_t v) {
    if (v < kLinear) return static_cast<std::size_t>(v);
    const int shift = std::bit_width(v) - 8;  // >= 1
    return kLinear + static_cast<std::size_t>(shift - 1) * kSub +
           static_cast<std::size_t>((v >> shift) - kSub);
  }
  static std::uint64_t lower_bound(std::size_t i) {
    if (i < kLinear) return i;
    const std::size_t j = i - kLinear;
    return static_cast<std::uint64_t>(j % kSub + kSub) << (j / kSub + 1);
  }
  static std::uint64_t width(std::size_t i) {
    return i < kLinear ? 1 : std::uint64_t{1} << ((i - kLinear) / kSub + 1);
  }

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace kasagi::tools
