#include "broker/sentinel_discovery.hpp"

#include <hiredis/hiredis.h>

#include <charconv>
#include "broker/redis_records.hpp"

namespace kasagi::broker {

// One question to every Sentinel: the first address wins; `why` gathers the failures.
struct SentinelDiscovery::Question {
  Found done;
  std::size_t pending = 0;
  std::string why;

  void found(HostPort master) {
    if (auto d = std::exchange(done, nullptr)) d(std::move(master), {});
  }
  void failed(const std::string& reason) {
    why += (why.empty() ? "" : "; ") + reason;
    if (--pending == 0 && done) std::exchange(done, nullptr)(std::nullopt, why);
  }
};

SentinelDiscovery::SentinelDiscovery(boost::asio::io_context& io, SentinelSettings settings,
                                     std::chrono::steady_clock::duration timeout)
    : io_(io), settings_(std::move(settings)), timeout_(timeout), resolver_(io) {
  for (const auto& address : settings_.sentinels) {
    nodes_.push_back({.address = address, .conn = nullptr, .watcher = nullptr, .endpoint = {}});
  }
}

SentinelDiscovery::~SentinelDiscovery() {
  *alive_ = false;
  close();
}

void SentinelDiscovery::ask(Found done) {
  auto q = std::make_shared<Question>();
  q->done = std::move(done);
  q->pending = nodes_.size();
  for (std::size_t i = 0; i < nodes_.size(); ++i) query(i, q);
}

void SentinelDiscovery::close() {
  for (auto& node : nodes_) {
    if (auto conn = std::move(node.conn)) conn->close();
    if (auto watcher = std::move(node.watcher)) watcher->close();
  }
}

void SentinelDiscovery::query(std::size_t i, const std::shared_ptr<Question>& q) {
  if (nodes_[i].conn) {
    watch(i);  // reopened here when it was lost
    return send(i, q);
  }
  const HostPort& a = nodes_[i].address;
  resolver_.async_resolve(
      a.host, std::to_string(a.port),
      [this, alive = alive_, i, q](const boost::system::error_code& ec,
                                   const boost::asio::ip::tcp::resolver::results_type& results) {
        if (!*alive) return;
        const HostPort& a = nodes_[i].address;
        if (ec || results.empty()) return q->failed("cannot resolve " + a.host);
        nodes_[i].endpoint = results.begin()->endpoint();
        if (!nodes_[i].conn) open(i, *nodes_[i].endpoint);
        watch(i);
        send(i, q);
      });
}

void SentinelDiscovery::open(std::size_t i, const boost::asio::ip::tcp::endpoint& endpoint) {
  Node& node = nodes_[i];
  // `lost` forgets this connection only, not a newer one of the same Sentinel.
  auto forget = [this, alive = alive_, i](const std::string&) {
    if (!*alive) return;
    // The connection is gone: drop it unless a question is being sent on a newer one.
    if (nodes_[i].conn && nodes_[i].conn->gone()) nodes_[i].conn.reset();
  };
  node.conn = RedisConnection::open(io_, endpoint, timeout_,
                                    {.connected = {}, .lost = forget, .push = {}});
  // Commands sent before the connection is up wait in hiredis's output buffer.
  if (!settings_.password.empty()) {
    node.conn->command({"AUTH", settings_.password}, [](const redisReply*) {});
  }
}

void SentinelDiscovery::watch(std::size_t i) {
  Node& node = nodes_[i];
  if (!switched_ || node.watcher || !node.endpoint) return;
  auto on_message = [this, alive = alive_](const redisReply* r) {
    // ["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"]
    if (!*alive || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    if (reply_text(*r->element[0]) != "message") return;
    // The name has no spaces in Sentinel's configuration: split on them.
    std::string_view text = reply_text(*r->element[2]);
    std::vector<std::string_view> words;
    while (!text.empty()) {
      const auto space = text.find(' ');
      words.push_back(text.substr(0, space));
      text = space == std::string_view::npos ? "" : text.substr(space + 1);
    }
    if (words.size() != 5 || words[0] != settings_.master_name) return;
    HostPort master{std::string(words[3]), 0};
    auto [end, ec] = std::from_chars(words[4].data(), words[4].data() + words[4].size(),
                                     master.port);
    if (ec == std::errc() && master.port != 0) switched_(std::move(master));
  };
  auto forget = [this, alive = alive_, i](const std::string&) {
    if (*alive) nodes_[i].watcher.reset();  // the next question reopens it
  };
  node.watcher = SubscriberConnection::open(
      io_, *node.endpoint, timeout_,
      {.connected = {}, .lost = forget, .push = on_message, .refused = {}});
  if (!settings_.password.empty()) {
    node.watcher->command({"AUTH", settings_.password}, [](const redisReply*) {});
  }
  node.watcher->subscribe("+switch-master");
}

void SentinelDiscovery::send(std::size_t i, const std::shared_ptr<Question>& q) {
  const HostPort& a = nodes_[i].address;
  std::string where = "sentinel " + a.host + ":" + std::to_string(a.port);
  nodes_[i].conn->command(
      {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", settings_.master_name},
      [this, alive = alive_, q, where = std::move(where)](const redisReply* r) {
        if (!*alive) return;
        if (r == nullptr) return q->failed(where + ": no answer");
        if (r->type == REDIS_REPLY_ERROR) return q->failed(where + ": " + std::string(r->str));
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
          return q->failed(where + ": does not know the master '" + settings_.master_name +
                           "'");
        }
        HostPort master{std::string(reply_text(*r->element[0])), 0};
        const std::string_view port = reply_text(*r->element[1]);
        auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), master.port);
        if (ec != std::errc() || master.host.empty() || master.port == 0) {
          return q->failed(where + ": unexpected answer");
        }
        q->found(std::move(master));
      });
}

}  // namespace kasagi::broker
