// kasagi._core.Broker and Subscription: a blocking surface over broker::Broker, for the
// broker conformance suite (tests/broker) and scripts. Every wait releases the GIL and has
// a timeout; the broker's own thread never takes the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <variant>
#include <vector>

#include "bindings/bind.hpp"
#include "broker/cluster_broker.hpp"
#include "broker/cluster_slots.hpp"
#include "broker/memory_broker.hpp"
#include "broker/redis_broker.hpp"

namespace py = pybind11;

namespace kasagi::bindings {
namespace {

using namespace kasagi::broker;
using Seconds = std::chrono::duration<double>;

// A broker and the metrics it counts into, owned together: the shared_ptr<Broker> handed
// out aliases this holder, so whoever keeps the broker (a Server, later) keeps both.
struct Owned {
  metrics::Metrics metrics;
  std::unique_ptr<Broker> broker;  // destroyed first: it writes to `metrics`
};

struct PyBroker {
  std::shared_ptr<Broker> broker;
  std::shared_ptr<const metrics::Metrics> metrics;
};

template <class Make>
PyBroker make_broker(Make make) {
  auto owned = std::make_shared<Owned>();
  owned->broker = make(owned->metrics);
  return {std::shared_ptr<Broker>(owned, owned->broker.get()),
          std::shared_ptr<const metrics::Metrics>(owned, &owned->metrics)};
}

std::chrono::milliseconds milliseconds(py::handle seconds) {
  return std::chrono::milliseconds(std::llround(seconds.cast<double>() * 1000));
}

// BrokerOptions from keyword arguments; durations in seconds. Throws TypeError for an
// unknown name.
BrokerOptions options_from(const py::kwargs& kwargs) {
  BrokerOptions o;
  for (auto [key, value] : kwargs) {
    const auto name = key.cast<std::string>();
    if (name == "key_prefix") o.key_prefix = value.cast<std::string>();
    else if (name == "ops_max_len") o.ops_max_len = value.cast<std::uint32_t>();
    else if (name == "wait_replicas") o.wait_replicas = value.cast<std::uint32_t>();
    else if (name == "wait_timeout") o.wait_timeout = milliseconds(value);
    else if (name == "command_timeout") o.command_timeout = milliseconds(value);
    else if (name == "probe_interval") o.probe_interval = milliseconds(value);
    else if (name == "probe_timeout") o.probe_timeout = milliseconds(value);
    else if (name == "replay_timeout") o.replay_timeout = milliseconds(value);
    else throw py::type_error("unknown broker option '" + name + "'");
  }
  return o;
}

// Starts an operation with a completion `set(T)` and waits for it without the GIL.
// Raises TimeoutError when it does not complete within `timeout` seconds.
template <class T, class Start>
T wait_for(double timeout, Start start) {
  auto promise = std::make_shared<std::promise<T>>();
  auto future = promise->get_future();
  start([promise](T value) { promise->set_value(std::move(value)); });
  std::future_status status;
  {
    py::gil_scoped_release nogil;
    status = future.wait_for(Seconds(timeout));
  }
  if (status != std::future_status::ready) {
    PyErr_SetString(PyExc_TimeoutError, "the broker did not complete in time");
    throw py::error_already_set();
  }
  return future.get();
}

const char* status_name(Status s) {
  switch (s) {
    case Status::ok: return "ok";
    case Status::fenced: return "fenced";
    case Status::unavailable: return "unavailable";
  }
  return "?";
}

template <class T>
T field(const py::dict& d, const char* key) {
  return d.contains(key) ? d[key].cast<T>() : T{};
}

OpEntry entry_from(const py::dict& d) {
  return {field<std::string>(d, "data"), field<std::uint64_t>(d, "version"),
          field<std::uint64_t>(d, "base"), field<std::uint64_t>(d, "tick"),
          field<std::string>(d, "epoch"), field<std::string>(d, "sessions"),
          field<bool>(d, "after_snapshot")};
}

Snapshot snapshot_from(const py::dict& d) {
  return {field<std::string>(d, "data"), field<std::uint64_t>(d, "version"),
          field<std::uint64_t>(d, "tick"), field<std::string>(d, "epoch"),
          field<std::uint64_t>(d, "ts"), field<std::string>(d, "sessions")};
}

py::dict to_dict(const OpEntry& e) {
  return py::dict(py::arg("data") = py::bytes(e.data), py::arg("version") = e.version,
                  py::arg("base") = e.base, py::arg("tick") = e.tick,
                  py::arg("epoch") = e.epoch, py::arg("sessions") = py::bytes(e.sessions));
}

py::dict to_dict(const Snapshot& s) {
  return py::dict(py::arg("data") = py::bytes(s.data), py::arg("version") = s.version,
                  py::arg("tick") = s.tick, py::arg("epoch") = s.epoch, py::arg("ts") = s.ts,
                  py::arg("sessions") = py::bytes(s.sessions));
}

// Queues what the broker delivers until Python takes it.
class QueueSubscriber final : public Subscriber {
 public:
  struct Gap {};
  using Item = std::variant<std::string, Gap>;

  void on_message(std::string message) override { push(std::move(message)); }
  void on_gap() override { push(Gap{}); }

  // Returns the next item, or nullopt after `timeout` seconds without one.
  std::optional<Item> get(double timeout) {
    std::unique_lock lock(mutex_);
    if (!ready_.wait_for(lock, Seconds(timeout), [this] { return !items_.empty(); })) {
      return std::nullopt;
    }
    Item item = std::move(items_.front());
    items_.pop_front();
    return item;
  }

 private:
  void push(Item item) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(item));
    }
    ready_.notify_one();
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Item> items_;
};

struct PySubscription {
  std::shared_ptr<Broker> broker;
  std::string room;
  std::shared_ptr<QueueSubscriber> subscriber;

  py::object get(double timeout) {
    std::optional<QueueSubscriber::Item> item;
    {
      py::gil_scoped_release nogil;
      item = subscriber->get(timeout);
    }
    if (!item) return py::none();
    if (auto* message = std::get_if<std::string>(&*item)) return py::bytes(*message);
    return py::str("gap");
  }

  void close() {
    if (broker) broker->unsubscribe(room, subscriber.get());
    broker.reset();
  }
};

}  // namespace

void bind_broker(py::module_& m) {
  py::class_<PySubscription>(m, "Subscription")
      .def("get", &PySubscription::get, py::arg("timeout") = 5.0)
      .def("close", &PySubscription::close);

  py::class_<PyBroker>(m, "Broker")
      .def(
          "claim",
          [](PyBroker& b, const std::string& room, const std::string& token, std::int64_t ttl_ms,
             double timeout) {
            using Result = std::pair<Status, std::string>;
            auto [status, owner] = wait_for<Result>(timeout, [&](auto set) {
              b.broker->claim(room, token, std::chrono::milliseconds(ttl_ms),
                              [set](Status s, std::string o) { set({s, std::move(o)}); });
            });
            return py::make_tuple(status_name(status), owner);
          },
          py::arg("room"), py::arg("token"), py::arg("ttl_ms"), py::arg("timeout") = 10.0)
      .def(
          "release",
          [](PyBroker& b, const std::string& room, const std::string& token) {
            b.broker->release(room, token);
          },
          py::arg("room"), py::arg("token"))
      .def(
          "load",
          [](PyBroker& b, const std::string& room, double timeout) {
            using Result = std::pair<Status, RoomLog>;
            auto [status, log] = wait_for<Result>(timeout, [&](auto set) {
              b.broker->load(room, [set](Status s, RoomLog l) { set({s, std::move(l)}); });
            });
            py::list ops;
            for (const auto& e : log.ops) ops.append(to_dict(e));
            return py::dict(py::arg("status") = status_name(status),
                            py::arg("snapshot") = log.snapshot ? py::object(to_dict(*log.snapshot))
                                                               : py::none(),
                            py::arg("ops") = ops);
          },
          py::arg("room"), py::arg("timeout") = 10.0)
      .def(
          "append",
          [](PyBroker& b, const std::string& room, const std::string& token,
             const py::dict& entry, const py::bytes& message, double timeout) {
            return status_name(wait_for<Status>(timeout, [&](auto set) {
              b.broker->append(room, token, entry_from(entry), std::string(message), set);
            }));
          },
          py::arg("room"), py::arg("token"), py::arg("entry"), py::arg("message"),
          py::arg("timeout") = 10.0)
      .def(
          "append_all",
          [](PyBroker& b, const std::string& room, const std::string& token,
             const py::list& entries, const py::bytes& message, double timeout) {
            // Issued together, in order, without waiting for each other (so pipelined).
            struct Pending {
              std::mutex mutex;
              std::vector<Status> statuses;
              std::size_t left;
              std::function<void(std::vector<Status>)> done;
            };
            std::vector<OpEntry> ops;
            for (const auto& e : entries) ops.push_back(entry_from(e.cast<py::dict>()));
            const auto statuses = wait_for<std::vector<Status>>(timeout, [&](auto set) {
              auto pending = std::make_shared<Pending>();
              pending->statuses.resize(ops.size());
              pending->left = ops.size();
              pending->done = set;
              if (ops.empty()) return set({});
              for (std::size_t i = 0; i < ops.size(); ++i) {
                b.broker->append(room, token, std::move(ops[i]), std::string(message),
                                 [pending, i](Status s) {
                                   std::lock_guard lock(pending->mutex);
                                   pending->statuses[i] = s;
                                   if (--pending->left == 0) pending->done(pending->statuses);
                                 });
              }
            });
            py::list out;
            for (auto s : statuses) out.append(status_name(s));
            return out;
          },
          py::arg("room"), py::arg("token"), py::arg("entries"), py::arg("message"),
          py::arg("timeout") = 10.0)
      .def(
          "save_snapshot",
          [](PyBroker& b, const std::string& room, const std::string& token,
             const py::dict& snapshot, double timeout) {
            return status_name(wait_for<Status>(timeout, [&](auto set) {
              b.broker->save_snapshot(room, token, snapshot_from(snapshot), set);
            }));
          },
          py::arg("room"), py::arg("token"), py::arg("snapshot"), py::arg("timeout") = 10.0)
      .def(
          "publish",
          [](PyBroker& b, const std::string& room, const py::bytes& message) {
            b.broker->publish(room, std::string(message));
          },
          py::arg("room"), py::arg("message"))
      .def(
          "subscribe",
          [](PyBroker& b, const std::string& room) {
            PySubscription s{b.broker, room, std::make_shared<QueueSubscriber>()};
            b.broker->subscribe(room, s.subscriber);
            return s;
          },
          py::arg("room"))
      .def("metrics", [](const PyBroker& b) { return b.metrics->render(); })
      .def("shutdown", [](PyBroker& b) { b.broker->shutdown(); },
           py::call_guard<py::gil_scoped_release>());

  m.def(
      "memory_broker",
      [](const py::kwargs& kwargs) {
        return make_broker([options = options_from(kwargs)](metrics::Metrics&) {
          return std::make_unique<MemoryBroker>(options);
        });
      });
  m.def(
      "redis_broker",
      [](const std::string& url, const py::kwargs& kwargs) {
        return make_broker([&url, options = options_from(kwargs)](metrics::Metrics& metrics) {
          return std::make_unique<RedisBroker>(url, options, metrics);
        });
      },
      py::arg("url"));
  m.def(
      "cluster_broker",
      [](const std::string& nodes, const std::string& password, const py::kwargs& kwargs) {
        auto seeds = parse_host_list(nodes, "cluster");
        return make_broker([&seeds, &password,
                            options = options_from(kwargs)](metrics::Metrics& metrics) {
          return std::make_unique<ClusterBroker>(seeds, password, options, metrics);
        });
      },
      py::arg("nodes"), py::kw_only(), py::arg("password") = "");
  m.def("key_slot", [](const py::bytes& key) { return key_slot(std::string(key)); },
        py::arg("key"), "The Redis Cluster hash slot of `key` (as CLUSTER KEYSLOT).");
  m.def(
      "sentinel_broker",
      [](const std::string& sentinels, const std::string& master_name,
         const std::string& password, const std::string& sentinel_password,
         const py::kwargs& kwargs) {
        SentinelSettings settings{.sentinels = parse_host_list(sentinels, "sentinels"),
                                  .master_name = master_name,
                                  .password = sentinel_password};
        return make_broker([&settings, &password,
                            options = options_from(kwargs)](metrics::Metrics& metrics) {
          return std::make_unique<RedisBroker>(settings, password, options, metrics);
        });
      },
      py::arg("sentinels"), py::arg("master_name"), py::kw_only(), py::arg("password") = "",
      py::arg("sentinel_password") = "");
}

}  // namespace kasagi::bindings
