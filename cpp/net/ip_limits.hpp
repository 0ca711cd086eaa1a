// Limits per client address, over all of its connections: how many connections it may
// have open, and how fast it may join rooms. IPv6 clients are counted per /64, the block a
// single host or home usually gets, so that changing addresses within it does not help.
//
// Memory: one entry per address with open connections or a join bucket still refilling;
// idle entries are swept once the table doubles.
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <boost/asio/ip/address.hpp>
#include "net/rate_limiter.hpp"

namespace kasagi::net {

class IpLimits {
 public:
  using Address = boost::asio::ip::address;
  using Clock = RateLimiter::Clock;

  // 0 / 0.0: no limit.
  IpLimits(std::uint32_t max_connections, double join_rate, double join_burst)
      : max_connections_(max_connections), join_rate_(join_rate), join_burst_(join_burst) {}

  // One open connection of an address, counted until the lease is destroyed. Move-only.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), address_(other.address_) {}
    Lease& operator=(Lease&& other) noexcept {
      std::swap(owner_, other.owner_);
      std::swap(address_, other.address_);
      return *this;
    }
    ~Lease() {
      if (owner_) owner_->release(address_);
    }
    const Address& address() const { return address_; }

   private:
    friend class IpLimits;
    Lease(IpLimits* owner, Address a) : owner_(owner), address_(a) {}
    IpLimits* owner_ = nullptr;
    Address address_;
  };

  // Returns a lease for a new connection from `peer`, or nullopt when the address has
  // max_connections open already.
  std::optional<Lease> connect(const Address& peer);

  // Takes one join from the bucket of `peer`. Returns false when it is empty.
  bool allow_join(const Address& peer, Clock::time_point now);

 private:
  struct Entry {
    std::uint32_t connections = 0;
    std::optional<RateLimiter> joins;  // created at the first join
    Clock::time_point last_join{};
  };

  static Address key(const Address& a);  // the address, or its /64 for IPv6
  void release(const Address& key);
  bool idle(const Entry& e, Clock::time_point now) const;
  void sweep(Clock::time_point now);

  const std::uint32_t max_connections_;
  const double join_rate_;
  const double join_burst_;
  std::mutex mutex_;
  std::unordered_map<Address, Entry> entries_;
  std::size_t sweep_at_ = 1024;
};

}  // namespace kasagi::net
