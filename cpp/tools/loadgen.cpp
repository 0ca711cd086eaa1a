// kasagi-loadgen: R rooms x C clients, each sending U updates per second for T seconds,
// against a Kasagi server (ws://HOST:PORT/sync) or, with --redis, through Redis pub/sub
// with the same traffic shape (the baseline for fan-out cost). With several --port, the
// members of every room are spread over several instances that share rooms through Redis
// (bench/relay.py). Prints a human-readable summary, then one JSON line for scripts
// (bench/fanout.py, bench/relay.py).
//
// The run: connect and join every client (a bounded number at a time), start the clock,
// send through --warmup seconds unmeasured, then --duration seconds measured. Throughput
// and latency count only what happens inside the measured window; the server's CPU time
// (--server-pid) is read from /proc at both ends of it.
#include <chrono>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>
#include <unistd.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>
#include "tools/client_stats.hpp"
#include "tools/fleet.hpp"
#include "tools/io_pool.hpp"
#include "tools/proc_cpu.hpp"
#include "tools/redis_client.hpp"
#include "tools/ws_client.hpp"

namespace kasagi::tools {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

struct Options {
  std::string host = "127.0.0.1";
  std::vector<std::uint16_t> ports{8080};
  std::size_t rooms = 10;
  std::size_t clients_per_room = 10;
  double rate = 20.0;         // updates per second per client
  double duration = 10.0;     // measured seconds
  double warmup = 2.0;        // unmeasured seconds before the window
  protocol::Format encoding = protocol::Format::msgpack;
  // Client I/O threads: the benchmark machine may have 2 cores, and the server needs them.
  std::size_t threads = 2;
  std::vector<int> server_pids;  // empty = do not measure server CPU
  std::string room_prefix;    // default: "lg<pid>-" so that runs never share a room
  std::string redis;          // HOST:PORT: run the Redis pub/sub baseline instead
  std::size_t connect_concurrency = 64;  // connections being opened at once
  double connect_timeout = 60.0;
};

constexpr std::string_view kUsage = R"(usage: kasagi-loadgen [options]

Simulates R rooms x C clients, each sending U updates/s, against a Kasagi server
(ws://HOST:PORT/sync), or with --redis HOST:PORT the same traffic through Redis pub/sub.

  --host HOST               server host (default 127.0.0.1)
  --port PORT               server port (default 8080). Repeat it for instances that
                            share rooms through Redis: client i of every room connects
                            to the (i mod n)-th port, so each room has members on each
                            instance
  --rooms R                 rooms (default 10)
  --clients-per-room C      clients in each room (default 10)
  --rate U                  updates per second per client (default 20; 0 = listen only)
  --duration T              measured seconds (default 10)
  --warmup S                unmeasured seconds of traffic before (default 2)
  --encoding json|msgpack   wire format (default msgpack)
  --threads N               client I/O threads (default 2)
  --server-pid PID          measure this process's CPU time during the window
                            (repeatable: server CPU is the sum over them)
  --room-prefix P           room ids / channels are P0, P1, ... (default lg<pid>-)
  --redis HOST:PORT         run the Redis pub/sub baseline against this redis-server
  --connect-concurrency N   connections opened at once (default 64)
  --connect-timeout S       give up joining after S seconds (default 60)

Prints a summary, then one JSON line with every number.
)";

[[noreturn]] void usage_error(const std::string& why) {
  std::cerr << "kasagi-loadgen: " << why << "\n\n" << kUsage;
  std::exit(2);
}

template <class T>
T parse_number(std::string_view name, std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size())
    usage_error(std::string(name) + ": not a number: '" + std::string(text) + "'");
  return value;
}

double parse_seconds(std::string_view name, std::string_view text) {
  const auto v = parse_number<double>(name, text);
  if (!(v >= 0)) usage_error(std::string(name) + " must be >= 0");
  return v;
}

Options parse_options(int argc, char** argv) {
  Options o;
  bool default_port = true;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (!arg.starts_with("--")) usage_error("unexpected argument '" + std::string(arg) + "'");
    std::string_view name = arg, value;
    if (const auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else {
      if (i + 1 >= argc) usage_error(std::string(name) + " needs a value");
      value = argv[++i];
    }
    auto count = [&] { return parse_number<std::size_t>(name, value); };
    if (name == "--host") o.host = value;
    else if (name == "--port") {
      if (std::exchange(default_port, false)) o.ports.clear();
      o.ports.push_back(parse_number<std::uint16_t>(name, value));
    }
    else if (name == "--rooms") o.rooms = count();
    else if (name == "--clients-per-room") o.clients_per_room = count();
    else if (name == "--rate") o.rate = parse_seconds(name, value);
    else if (name == "--duration") o.duration = parse_seconds(name, value);
    else if (name == "--warmup") o.warmup = parse_seconds(name, value);
    else if (name == "--threads") o.threads = count();
    else if (name == "--server-pid") o.server_pids.push_back(parse_number<int>(name, value));
    else if (name == "--room-prefix") o.room_prefix = value;
    else if (name == "--redis") o.redis = value;
    else if (name == "--connect-concurrency") o.connect_concurrency = count();
    else if (name == "--connect-timeout") o.connect_timeout = parse_seconds(name, value);
    else if (name == "--encoding") {
      if (value == "msgpack") o.encoding = protocol::Format::msgpack;
      else if (value == "json") o.encoding = protocol::Format::json;
      else usage_error("--encoding must be json or msgpack");
    } else {
      usage_error("unknown option '" + std::string(name) + "'");
    }
  }
  if (o.rooms == 0 || o.clients_per_room == 0)
    usage_error("--rooms and --clients-per-room must be >= 1");
  if (o.duration <= 0) usage_error("--duration must be > 0");
  if (o.threads == 0) o.threads = 1;
  if (o.connect_concurrency == 0) o.connect_concurrency = 1;
  if (o.room_prefix.empty()) o.room_prefix = "lg" + std::to_string(::getpid()) + "-";
  if (!o.redis.empty()) {
    const auto colon = o.redis.rfind(':');
    if (colon == std::string::npos) usage_error("--redis wants HOST:PORT");
    if (!default_port) usage_error("--redis and --port exclude each other");
    o.host = o.redis.substr(0, colon);
    o.ports = {parse_number<std::uint16_t>("--redis", std::string_view(o.redis).substr(colon + 1))};
  }
  return o;
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

std::optional<tcp::endpoint> resolve(const std::string& host, std::uint16_t port) {
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  boost::system::error_code ec;
  const auto results = resolver.resolve(host, std::to_string(port), ec);
  if (ec || results.empty()) {
    std::cerr << "kasagi-loadgen: cannot resolve " << host << ": " << ec.message() << "\n";
    return std::nullopt;
  }
  for (const auto& r : results)
    if (r.endpoint().address().is_v4()) return r.endpoint();
  return results.begin()->endpoint();
}

struct RunResult {
  std::size_t clients = 0;
  std::size_t joined = 0;
  double connect_seconds = 0;
  ClientStats stats;
  std::optional<double> server_cpu;  // seconds within the window, summed over --server-pid
  std::vector<std::optional<double>> server_cpu_each;  // per --server-pid, in their order
  double loadgen_cpu = 0;            // seconds within the window
  std::optional<double> machine_busy;  // seconds of all CPUs busy within the window
};

RunResult run(const Options& o, const ClientFactory& make) {
  RunResult result;
  IoPool pool(o.threads);
  Fleet fleet(pool, o.rooms, o.clients_per_room, o.connect_concurrency, make);
  result.clients = fleet.size();

  const auto t_connect = Clock::now();
  result.joined = fleet.open_all(std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(o.connect_timeout)));
  result.connect_seconds = std::chrono::duration<double>(Clock::now() - t_connect).count();
  std::cerr << "kasagi-loadgen: " << result.joined << "/" << result.clients << " clients joined in "
            << result.connect_seconds << " s\n";

  if (result.joined > 0) {
    const auto start = Clock::now() + std::chrono::milliseconds(100);
    auto secs = [](double s) {
      return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
    };
    Window window;
    window.begin = start + secs(o.warmup);
    window.end = window.begin + secs(o.duration);
    fleet.start(start, window);

    auto server_cpu = [&] {
      std::vector<std::optional<double>> each;
      for (const int pid : o.server_pids) each.push_back(process_cpu_seconds(pid));
      return each;
    };
    std::this_thread::sleep_until(window.begin);
    const auto cpu0 = server_cpu();
    const double self0 = self_cpu_seconds();
    const auto busy0 = machine_busy_seconds();
    std::this_thread::sleep_until(window.end);
    const auto cpu1 = server_cpu();
    result.loadgen_cpu = self_cpu_seconds() - self0;
    const auto busy1 = machine_busy_seconds();
    if (busy0 && busy1) result.machine_busy = *busy1 - *busy0;
    double sum = 0;
    bool all_read = true;  // a sum missing a process would look cheap: none then
    for (std::size_t i = 0; i < o.server_pids.size(); ++i) {
      std::optional<double> used;
      if (cpu0[i] && cpu1[i]) used = *cpu1[i] - *cpu0[i];
      else std::cerr << "kasagi-loadgen: cannot read /proc/" << o.server_pids[i] << "/stat\n";
      result.server_cpu_each.push_back(used);
      sum += used.value_or(0.0);
      all_read = all_read && used.has_value();
    }
    if (!o.server_pids.empty() && all_read) result.server_cpu = sum;
  }

  const std::size_t closed = fleet.close_all(std::chrono::seconds(5));
  if (closed < result.clients)
    std::cerr << "kasagi-loadgen: " << result.clients - closed
              << " clients did not close in time\n";
  pool.stop();
  result.stats = fleet.collect();
  return result;
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

// How many clients connect to the k-th --port: client i of each room goes to port i mod n.
std::size_t clients_on_port(const Options& o, std::size_t k) {
  const std::size_t n = o.ports.size();
  return o.rooms * ((o.clients_per_room + n - 1 - k) / n);
}

// The numbers a run produced, derived from the raw counts once for both outputs.
struct Summary {
  double sent_per_s = 0;
  double received_per_s = 0;
  double bytes_per_delivery = 0;
  double payload_bytes_per_delivery = 0;
  double p50 = 0, p99 = 0, p999 = 0, max = 0;  // ms
  double lag_p50 = 0, lag_p99 = 0;             // ms
  std::optional<double> cpu_us_per_op;         // server CPU-µs per (in + out)
};

Summary summarize(const Options& o, const RunResult& r) {
  const ClientStats& s = r.stats;
  auto per = [](std::uint64_t total, double n) {
    return n > 0 ? static_cast<double>(total) / n : 0.0;
  };
  constexpr double kMs = 1e-3;  // the histograms count µs
  Summary m;
  m.sent_per_s = per(s.updates_sent, o.duration);
  m.received_per_s = per(s.deliveries, o.duration);
  m.bytes_per_delivery = per(s.delivery_bytes, static_cast<double>(s.deliveries));
  m.payload_bytes_per_delivery = per(s.payload_bytes, static_cast<double>(s.deliveries));
  m.p50 = s.latency.quantile(0.50) * kMs;
  m.p99 = s.latency.quantile(0.99) * kMs;
  m.p999 = s.latency.quantile(0.999) * kMs;
  m.max = static_cast<double>(s.latency.max()) * kMs;
  m.lag_p50 = s.send_lag.quantile(0.50) * kMs;
  m.lag_p99 = s.send_lag.quantile(0.99) * kMs;
  const std::uint64_t ops = s.updates_sent + s.deliveries;
  if (r.server_cpu && ops > 0) m.cpu_us_per_op = *r.server_cpu * 1e6 / static_cast<double>(ops);
  return m;
}

void print_summary(const Options& o, bool redis, const RunResult& r, const Summary& m) {
  const ClientStats& s = r.stats;
  const char* mode = redis                                       ? "redis pub/sub"
                     : o.encoding == protocol::Format::msgpack ? "kasagi msgpack"
                                                               : "kasagi json";
  const std::string sent = redis ? "publishes" : "updates";
  const std::string received = redis ? "messages" : "deltas";
  auto ull = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };

  std::string ports;
  for (const auto p : o.ports) ports += (ports.empty() ? "" : ",") + std::to_string(p);
  std::printf("kasagi-loadgen: %s %s:%s, %zu rooms x %zu clients, %g updates/s each, "
              "%g s warm-up + %g s measured, %zu threads\n",
              mode, o.host.c_str(), ports.c_str(), o.rooms, o.clients_per_room, o.rate, o.warmup,
              o.duration, o.threads);
  std::printf("  %-24s %zu/%zu (in %.2f s)\n", "clients joined", r.joined, r.clients,
              r.connect_seconds);
  std::printf("  %-24s %.1f\n", (sent + " sent/s").c_str(), m.sent_per_s);
  std::printf("  %-24s %.1f\n", (received + " received/s").c_str(), m.received_per_s);
  std::printf("  %-24s %.1f (%s)\n", (redis ? "bytes per message" : "bytes per delta"),
              m.bytes_per_delivery, redis ? "RESP push" : "WebSocket message");
  if (redis) std::printf("  %-24s %.1f\n", "payload bytes per msg", m.payload_bytes_per_delivery);
  std::printf("  %-24s p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  (%llu samples)\n", "latency ms",
              m.p50, m.p99, m.p999, m.max, ull(s.latency.count()));
  std::printf("  %-24s p50 %.2f  p99 %.2f  (timers firing late: the loadgen is starved)\n",
              "loadgen send lag ms", m.lag_p50, m.lag_p99);
  std::printf("  %-24s %llu  (disconnects %llu, sends skipped %llu, dropped %llu)\n", "errors",
              ull(s.errors), ull(s.disconnects), ull(s.sends_skipped), ull(s.sends_dropped));
  for (const auto& e : s.error_samples) std::printf("    e.g. %s\n", e.c_str());
  for (std::size_t k = 0; !redis && k < o.ports.size(); ++k) {
    const TargetStats t = k < s.by_target.size() ? s.by_target[k] : TargetStats{};
    std::printf("  %-24s %llu/%zu joined, %.1f deltas received/s, %llu clients got none\n",
                ("port " + std::to_string(o.ports[k])).c_str(), ull(t.clients_joined),
                clients_on_port(o, k), static_cast<double>(t.deliveries) / o.duration,
                ull(t.clients_without_deltas));
  }
  if (m.cpu_us_per_op) {
    std::printf("  %-24s %.2f s in %g s (%.0f %% of a core)\n", "server CPU", *r.server_cpu,
                o.duration, *r.server_cpu / o.duration * 100.0);
    std::printf("  server CPU-us per (%s in + %s out): %.3f\n", redis ? "publish" : "update",
                redis ? "message" : "delta", *m.cpu_us_per_op);
  }
  std::printf("  %-24s %.2f s (%.0f %% of a core)\n", "loadgen CPU", r.loadgen_cpu,
              r.loadgen_cpu / o.duration * 100.0);
  if (r.machine_busy)
    std::printf("  %-24s %.2f s (%.0f %% of a core; of %u cores)\n", "machine CPU busy",
                *r.machine_busy, *r.machine_busy / o.duration * 100.0,
                std::thread::hardware_concurrency());
}

// One JSON object with every number, printed as the last line for scripts.
std::string json_line(const Options& o, bool redis, const RunResult& r, const Summary& m) {
  const ClientStats& s = r.stats;
  namespace json = boost::json;
  auto optional = [](std::optional<double> v) {
    return v ? json::value(*v) : json::value(nullptr);
  };
  json::array samples;
  for (const auto& e : s.error_samples) samples.emplace_back(e);
  json::object j;
  j["mode"] = redis ? "redis" : "kasagi";
  j["encoding"] = redis || o.encoding == protocol::Format::msgpack ? "msgpack" : "json";
  j["rooms"] = o.rooms;
  j["clients_per_room"] = o.clients_per_room;
  j["rate"] = o.rate;
  j["duration"] = o.duration;
  j["warmup"] = o.warmup;
  j["threads"] = o.threads;
  j["clients"] = r.clients;
  j["clients_joined"] = r.joined;
  j["connect_seconds"] = r.connect_seconds;
  j["updates_sent"] = s.updates_sent;
  j["updates_sent_per_s"] = m.sent_per_s;
  j["deliveries"] = s.deliveries;
  j["deliveries_per_s"] = m.received_per_s;
  j["bytes_per_delivery"] = m.bytes_per_delivery;
  if (redis) j["payload_bytes_per_delivery"] = m.payload_bytes_per_delivery;
  j["latency_ms"] = {{"p50", m.p50}, {"p99", m.p99}, {"p999", m.p999}, {"max", m.max},
                     {"samples", s.latency.count()}};
  j["send_lag_ms"] = {{"p50", m.lag_p50}, {"p99", m.lag_p99}};
  j["errors"] = s.errors;
  j["disconnects"] = s.disconnects;
  j["sends_skipped"] = s.sends_skipped;
  j["sends_dropped"] = s.sends_dropped;
  j["error_samples"] = std::move(samples);
  j["server_cpu_seconds"] = optional(r.server_cpu);
  j["server_cpu_us_per_op"] = optional(m.cpu_us_per_op);
  j["loadgen_cpu_seconds"] = r.loadgen_cpu;
  j["machine_busy_seconds"] = optional(r.machine_busy);
  json::array ports, pids, cpu_each;
  for (const auto p : o.ports) ports.emplace_back(p);
  for (const int pid : o.server_pids) pids.emplace_back(pid);
  for (const auto& c : r.server_cpu_each) cpu_each.push_back(optional(c));
  j["ports"] = std::move(ports);
  j["server_pids"] = std::move(pids);
  j["server_cpu_seconds_each"] = std::move(cpu_each);
  if (!redis) {
    // Per instance (in --port order), and in all: clients that joined yet got no delta.
    json::array per_port;
    std::uint64_t silent = 0;
    for (std::size_t k = 0; k < o.ports.size(); ++k) {
      const TargetStats t = k < s.by_target.size() ? s.by_target[k] : TargetStats{};
      per_port.push_back(json::object{{"port", o.ports[k]},
                                      {"clients", clients_on_port(o, k)},
                                      {"clients_joined", t.clients_joined},
                                      {"deliveries", t.deliveries},
                                      {"clients_without_deltas", t.clients_without_deltas}});
      silent += t.clients_without_deltas;
    }
    j["per_port"] = std::move(per_port);
    j["clients_without_deltas"] = silent;
  }
  return json::serialize(j);
}

int main_impl(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  const unsigned long files = raise_open_file_limit();
  const std::size_t total = o.rooms * o.clients_per_room;
  const std::size_t needed = total * (o.redis.empty() ? 1 : 2) + 64;
  if (files < needed)
    std::cerr << "kasagi-loadgen: warning: open file limit " << files << " < " << needed
              << " needed\n";

  const auto endpoint = resolve(o.host, o.ports.front());
  if (!endpoint) return 1;

  RunResult result;
  const bool redis = !o.redis.empty();
  if (redis) {
    RedisTarget target{*endpoint, o.rate, o.room_prefix};
    result = run(o, [&](Shard& shard, std::size_t room, std::size_t index) {
      return make_redis_client(shard, target, room, index);
    });
  } else {
    std::vector<WsTarget> targets;  // one per --port, same host
    for (std::size_t k = 0; k < o.ports.size(); ++k) {
      const tcp::endpoint ep(endpoint->address(), o.ports[k]);
      const std::string host = o.host + ":" + std::to_string(o.ports[k]);
      targets.push_back(WsTarget{ep, host, o.encoding, o.rate, o.room_prefix, k});
    }
    result = run(o, [&](Shard& shard, std::size_t room, std::size_t index) {
      const std::size_t i = index % o.clients_per_room;  // the client's place in its room
      return make_ws_client(shard, targets[i % targets.size()], room, index);
    });
  }
  const Summary summary = summarize(o, result);
  print_summary(o, redis, result, summary);
  std::printf("%s\n", json_line(o, redis, result, summary).c_str());
  std::fflush(stdout);
  return result.joined == result.clients ? 0 : 1;
}

}  // namespace
}  // namespace kasagi::tools

int main(int argc, char** argv) { return kasagi::tools::main_impl(argc, argv); }
