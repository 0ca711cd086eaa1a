#include "net/ip_limits.hpp"

#include <algorithm>

namespace kasagi::net {

IpLimits::Address IpLimits::key(const Address& a) {
  if (!a.is_v6()) return a;
  const auto v6 = a.to_v6();
  if (v6.is_v4_mapped()) return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6);
  auto bytes = v6.to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);  // the /64 network
  return boost::asio::ip::address_v6(bytes);
}

std::optional<IpLimits::Lease> IpLimits::connect(const Address& peer) {
  if (max_connections_ == 0 && join_rate_ <= 0) return Lease(nullptr, key(peer));
  const Address k = key(peer);
  std::lock_guard lock(mutex_);
  if (entries_.size() >= sweep_at_) sweep(Clock::now());
  Entry& e = entries_[k];
  if (max_connections_ != 0 && e.connections >= max_connections_) return std::nullopt;
  ++e.connections;
  return Lease(this, k);
}

void IpLimits::release(const Address& k) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(k);
  if (it == entries_.end()) return;
  --it->second.connections;
  if (idle(it->second, Clock::now())) entries_.erase(it);
}

bool IpLimits::allow_join(const Address& peer, Clock::time_point now) {
  if (join_rate_ <= 0) return true;
  std::lock_guard lock(mutex_);
  Entry& e = entries_[key(peer)];
  if (!e.joins) e.joins.emplace(join_rate_, join_burst_);
  e.last_join = now;
  return e.joins->allow(now);
}

// No connections, and a join bucket that has refilled (forgetting it changes nothing).
bool IpLimits::idle(const Entry& e, Clock::time_point now) const {
  if (e.connections > 0) return false;
  return !e.joins || now - e.last_join >= std::chrono::duration<double>(join_burst_ / join_rate_);
}

void IpLimits::sweep(Clock::time_point now) {
  std::erase_if(entries_, [&](const auto& kv) { return idle(kv.second, now); });
  sweep_at_ = std::max<std::size_t>(1024, 2 * entries_.size());
}

}  // namespace kasagi::net
