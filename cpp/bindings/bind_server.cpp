// kasagi._core.ServerConfig and kasagi._core.Server. Every blocking call releases the GIL;
// the server's own threads never take it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/bind.hpp"
#include "bindings/convert.hpp"
#include "server/server.hpp"

namespace py = pybind11;

namespace kasagi::bindings {
namespace {

// Stopping a server joins its threads, and a hook thread may be waiting for the GIL: a
// server is never destroyed with the GIL held.
struct DeleteWithoutGil {
  void operator()(server::Server* s) const {
    if (PyGILState_Check()) {
      py::gil_scoped_release release;
      delete s;
    } else {
      delete s;
    }
  }
};

}  // namespace

void bind_server(py::module_& m) {
  using server::ServerConfig;
  py::class_<ServerConfig>(m, "ServerConfig",
                           "Plain settings struct; see kasagi.Config for meanings and defaults")
      .def(py::init<>())
      .def_readwrite("host", &ServerConfig::host)
      .def_readwrite("port", &ServerConfig::port)
      .def_readwrite("threads", &ServerConfig::threads)
      .def_readwrite("io_batch_wait", &ServerConfig::io_batch_wait)
      .def_readwrite("static_dir", &ServerConfig::static_dir)
      .def_readwrite("trace_file", &ServerConfig::trace_file)
      .def_readwrite("trace_rooms", &ServerConfig::trace_rooms)
      .def_readwrite("jwt_secret", &ServerConfig::jwt_secret)
      .def_readwrite("jwt_public_key", &ServerConfig::jwt_public_key)
      .def_readwrite("allowed_origins", &ServerConfig::allowed_origins)
      .def_readwrite("tls_cert", &ServerConfig::tls_cert)
      .def_readwrite("tls_key", &ServerConfig::tls_key)
      .def_readwrite("tick_rate", &ServerConfig::tick_rate)
      .def_readwrite("room_empty_ttl", &ServerConfig::room_empty_ttl)
      .def_readwrite("max_rooms", &ServerConfig::max_rooms)
      .def_readwrite("max_members_per_room", &ServerConfig::max_members_per_room)
      .def_readwrite("delta_history", &ServerConfig::delta_history)
      .def_readwrite("delta_history_bytes", &ServerConfig::delta_history_bytes)
      .def_readwrite("conflict_window", &ServerConfig::conflict_window)
      .def_readwrite("writable_paths", &ServerConfig::writable_paths)
      .def_readwrite("max_state_depth", &ServerConfig::max_state_depth)
      .def_readwrite("hook_threads", &ServerConfig::hook_threads)
      .def_readwrite("session_grace", &ServerConfig::session_grace)
      .def_readwrite("idle_timeout", &ServerConfig::idle_timeout)
      .def_readwrite("handshake_timeout", &ServerConfig::handshake_timeout)
      .def_readwrite("max_rooms_per_connection", &ServerConfig::max_rooms_per_connection)
      .def_readwrite("max_message_bytes", &ServerConfig::max_message_bytes)
      .def_readwrite("max_frame_bytes", &ServerConfig::max_frame_bytes)
      .def_readwrite("rate_limit", &ServerConfig::rate_limit)
      .def_readwrite("rate_burst", &ServerConfig::rate_burst)
      .def_readwrite("rate_limit_close_after", &ServerConfig::rate_limit_close_after)
      .def_readwrite("max_header_bytes", &ServerConfig::max_header_bytes)
      .def_readwrite("max_header_count", &ServerConfig::max_header_count)
      .def_readwrite("max_fragments", &ServerConfig::max_fragments)
      .def_readwrite("permessage_deflate", &ServerConfig::permessage_deflate)
      .def_readwrite("read_bytes_per_second", &ServerConfig::read_bytes_per_second)
      .def_readwrite("max_connections_per_ip", &ServerConfig::max_connections_per_ip)
      .def_readwrite("join_rate_per_ip", &ServerConfig::join_rate_per_ip)
      .def_readwrite("join_burst_per_ip", &ServerConfig::join_burst_per_ip)
      .def_readwrite("send_queue_max_bytes", &ServerConfig::send_queue_max_bytes)
      .def_readwrite("send_queue_max_messages", &ServerConfig::send_queue_max_messages)
      .def_readwrite("slow_consumer_window", &ServerConfig::slow_consumer_window)
      .def_readwrite("redis", &ServerConfig::redis)
      .def_readwrite("sentinel", &ServerConfig::sentinel)
      .def_readwrite("master_name", &ServerConfig::master_name)
      .def_readwrite("cluster", &ServerConfig::cluster)
      .def_readwrite("redis_password", &ServerConfig::redis_password)
      .def_readwrite("sentinel_password", &ServerConfig::sentinel_password)
      .def_readwrite("key_prefix", &ServerConfig::key_prefix)
      .def_readwrite("durability", &ServerConfig::durability)
      .def_readwrite("lease_ttl", &ServerConfig::lease_ttl)
      .def_readwrite("snapshot_every", &ServerConfig::snapshot_every)
      .def_readwrite("snapshot_interval", &ServerConfig::snapshot_interval)
      .def_readwrite("ops_max_len", &ServerConfig::ops_max_len)
      .def_readwrite("wait_timeout", &ServerConfig::wait_timeout)
      .def_readwrite("redis_replay_timeout", &ServerConfig::redis_replay_timeout)
      .def_readwrite("drain_timeout", &ServerConfig::drain_timeout)
      .def_readwrite("log_level", &ServerConfig::log_level);

  using server::Server;
  py::class_<Server, std::unique_ptr<Server, DeleteWithoutGil>>(m, "Server")
      .def(py::init<ServerConfig>(), py::arg("config"))
      .def("start", &Server::start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &Server::stop, py::call_guard<py::gil_scoped_release>())
      .def("drain", &Server::drain, py::arg("timeout"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("port", &Server::port)
      .def_property_readonly("running", &Server::running)
      .def("metrics", &Server::metrics, py::call_guard<py::gil_scoped_release>())
      .def("stats",
           [](const Server& s) {
             const auto st = s.stats();
             py::dict d;
             d["connections"] = st.connections;
             d["rooms"] = st.rooms;
             d["members"] = st.members;
             return d;
           })
      .def("session_claims",
           [](const Server& s) {
             std::vector<state::Object> claims;
             {
               py::gil_scoped_release release;
               claims = s.session_claims();
             }
             py::list out;
             for (const auto& c : claims) out.append(to_python(state::Value(c)));
             return out;
           })
      .def("room_state", [](Server& s, const std::string& id) -> py::object {
        std::optional<server::RoomSnapshot> snap;
        {
          py::gil_scoped_release release;
          snap = s.room_state(id);
        }
        if (!snap) return py::none();
        py::dict d;
        d["state"] = to_python(state::Value(snap->state));
        d["version"] = snap->version;
        d["tick"] = snap->tick;
        d["epoch"] = snap->epoch;
        return d;
      });
}

}  // namespace kasagi::bindings
