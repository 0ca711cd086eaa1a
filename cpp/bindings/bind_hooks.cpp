// The Python side of room hooks (room/room_hooks.hpp): kasagi._core.RoomHandle, the object
// a hook acts on its room through, and PyRoomHooks, which calls a room type's Python hooks.
//
// The GIL model (docs/hooks.md). Rooms whose type has hooks run on the server's hook
// threads, never on its I/O threads; only there is the GIL taken, for the length of one
// hook call, then released. Rooms without hooks and every connection run on the I/O
// threads, which never take it: a slow or GIL-bound hook delays rooms with hooks only.
// Every hook thread serves every hooked room (a strand per room), so a hook that waits (I/O,
// sleep: the GIL is free meanwhile) leaves the other rooms running on the other hook
// threads; Python code itself runs one hook at a time, whichever room it belongs to.
//
// Everything that holds a Python reference and may die on a C++ thread (the factory of a
// room type, a room's hooks) takes the GIL to let go of it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <thread>

#include "bindings/bind.hpp"
#include "bindings/convert.hpp"
#include "room/room_hooks.hpp"
#include "server/server.hpp"
#include "telemetry/log.hpp"

namespace py = pybind11;

namespace kasagi::bindings {
namespace {

// A hook thread is not a Python thread: give it one thread state for its whole life, rather
// than one created and destroyed per hook call.
void keep_thread_state() {
  thread_local bool kept = false;
  if (kept) return;
  kept = true;
  if (PyGILState_GetThisThreadState() != nullptr) return;  // a Python thread already
  PyGILState_Ensure();  // creates this thread's state, takes the GIL
  PyEval_SaveThread();  // releases the GIL, keeps the state
}

// The room a hook acts on, valid only during a hook call, on the thread making it.
class RoomHandle {
 public:
  room::RoomControl& get() const {
    if (!ctl_ || std::this_thread::get_id() != thread_) {
      throw std::runtime_error(
          "this room can only be used inside one of its hooks, on the thread running it");
    }
    return *ctl_;
  }
  void enter(room::RoomControl& ctl) {
    ctl_ = &ctl;
    thread_ = std::this_thread::get_id();
  }
  void leave() { ctl_ = nullptr; }

 private:
  room::RoomControl* ctl_ = nullptr;
  std::thread::id thread_;
};

// A corrected patch or attributes, converted by the dispatcher when the hook returned them:
// a value no document can hold (NaN, bytes...) fails there, where it is reported with its
// hook, once (kasagi.rooms._Dispatcher).
struct HookValue {
  state::Value value;
};

state::Path pointer(const std::string& path) {
  auto parsed = state::parse_pointer(path);
  if (!parsed) throw py::value_error("'" + path + "' is not a JSON Pointer such as /npcs/n1/x");
  return *parsed;
}

// Calls a room type's hooks: each one a method of its Python dispatcher
// (kasagi.rooms._Dispatcher), which runs the user's hook and turns what it did into
// None (accept) or (kind, value) with kind "replace" (value: a HookValue), "reject" or
// "error". Every failure is logged by the dispatcher, once per kind (report()).
class PyRoomHooks final : public room::RoomHooks {
 public:
  PyRoomHooks(py::object dispatcher, std::shared_ptr<RoomHandle> handle)
      : handle_(std::move(handle)) {
    mask_ = dispatcher.attr("mask").cast<unsigned>();
    create_ = dispatcher.attr("create");
    join_ = dispatcher.attr("join");
    update_ = dispatcher.attr("update");
    leave_ = dispatcher.attr("leave");
    tick_ = dispatcher.attr("tick");
    dispose_ = dispatcher.attr("dispose");
    report_ = dispatcher.attr("report");
    dispatcher_ = std::move(dispatcher);
  }
  ~PyRoomHooks() override {
    keep_thread_state();
    py::gil_scoped_acquire gil;
    for (auto* o :
         {&create_, &join_, &update_, &leave_, &tick_, &dispose_, &report_, &dispatcher_}) {
      *o = py::object();
    }
  }

  unsigned hooks() const override { return mask_; }

  bool on_create(room::RoomControl& room) override {
    return call(room, "on_create", [&] { return create_(); });
  }
  room::HookVerdict on_join(room::RoomControl& room, const std::string& player_id,
                            const state::Object& attrs, const state::Object& claims) override {
    return verdict(room, "on_join",
                   [&] { return join_(player_id, to_python(attrs), to_python(claims)); });
  }
  room::HookVerdict on_update(room::RoomControl& room, const std::string& player_id,
                              const state::Path& path, const state::Value& patch) override {
    return verdict(room, "on_update", [&] {
      return update_(player_id, state::format_pointer(path), to_python(patch));
    });
  }
  bool on_leave(room::RoomControl& room, const std::string& player_id,
                std::string_view reason) override {
    return call(room, "on_leave", [&] { return leave_(player_id, std::string(reason)); });
  }
  bool on_tick(room::RoomControl& room, double dt) override {
    return call(room, "on_tick", [&] { return tick_(dt); });
  }
  bool on_dispose(room::RoomControl& room) override {
    return call(room, "on_dispose", [&] { return dispose_(); });
  }
  void report(room::RoomControl& room, std::string_view hook, std::string_view problem,
              std::string_view detail) override {
    keep_thread_state();
    py::gil_scoped_acquire gil;
    report_locked(room, hook, problem, detail);
  }

 private:
  // Runs f with the GIL and the handle bound to `room`; returns false if it failed. The
  // dispatcher catches what the user's hook raises or returns wrongly (and returns False
  // for a notification that failed); what escapes it (a bug in it, a reason whose str()
  // raises) is reported here, through it still.
  template <class F>
  bool call(room::RoomControl& room, const char* hook, F f) {
    keep_thread_state();
    py::gil_scoped_acquire gil;
    handle_->enter(room);
    bool ok = true;
    try {
      py::object r = f();
      ok = !(r.ptr() == Py_False);
    } catch (py::error_already_set& e) {
      // Logged once per exception type (tp_name: no Python call that could fail in turn).
      const char* type = reinterpret_cast<PyTypeObject*>(e.type().ptr())->tp_name;
      report_locked(room, hook, std::string("failed in the hook bridge (") + type + ")",
                    e.what());
      ok = false;
    } catch (const std::exception& e) {
      report_locked(room, hook, "failed in the hook bridge", e.what());
      ok = false;
    }
    handle_->leave();
    return ok;
  }

  // With the GIL. Through the dispatcher's once-per-kind log; straight to stderr only if
  // even that fails.
  void report_locked(room::RoomControl& room, std::string_view hook, std::string_view problem,
                     std::string_view detail) {
    try {
      report_(hook, problem, detail);
    } catch (const std::exception& e) {
      log::error("room " + room.id() + ": " + std::string(hook) + " " + std::string(problem) +
                 ": " + std::string(detail) + " (and reporting it failed: " + e.what() + ")");
    }
  }

  template <class F>
  room::HookVerdict verdict(room::RoomControl& room, const char* hook, F f) {
    room::HookVerdict v;
    const bool ok = call(room, hook, [&] {
      py::object r = f();
      if (r.is_none()) return r;
      auto t = r.cast<py::tuple>();
      const auto kind = t[0].cast<std::string>();
      if (kind == "replace") {
        v.kind = room::HookVerdict::Kind::replace;
        v.value = std::move(t[1].cast<HookValue&>().value);
      } else if (kind == "reject") {
        v.kind = room::HookVerdict::Kind::reject;
        v.reason = t[1].is_none() ? std::string() : py::str(t[1]).cast<std::string>();
      } else {
        v.kind = room::HookVerdict::Kind::error;
      }
      return py::object(py::none());
    });
    if (!ok) v.kind = room::HookVerdict::Kind::error;
    return v;
  }

  std::shared_ptr<RoomHandle> handle_;
  unsigned mask_ = 0;
  py::object dispatcher_, create_, join_, update_, leave_, tick_, dispose_, report_;
};

// The hooks of a room whose dispatcher could not be made: joins and updates fail with
// INTERNAL rather than run unchecked.
class BrokenHooks final : public room::RoomHooks {
 public:
  unsigned hooks() const override { return join | update; }
  bool on_create(room::RoomControl&) override { return true; }
  room::HookVerdict on_join(room::RoomControl&, const std::string&, const state::Object&,
                            const state::Object&) override {
    return {room::HookVerdict::Kind::error, {}, {}};
  }
  room::HookVerdict on_update(room::RoomControl&, const std::string&, const state::Path&,
                              const state::Value&) override {
    return {room::HookVerdict::Kind::error, {}, {}};
  }
  bool on_leave(room::RoomControl&, const std::string&, std::string_view) override {
    return true;
  }
  bool on_tick(room::RoomControl&, double) override { return true; }
  bool on_dispose(room::RoomControl&) override { return true; }
};

// Holds a Python object from C++ code that may drop it on any thread.
std::shared_ptr<py::object> hold(py::object o) {
  return std::shared_ptr<py::object>(new py::object(std::move(o)), [](py::object* p) {
    keep_thread_state();
    py::gil_scoped_acquire gil;
    delete p;
  });
}

}  // namespace

void bind_hooks(py::module_& m) {
  py::class_<HookValue>(m, "HookValue",
                        "A hook's corrected patch or attributes, converted for the room (used "
                        "by kasagi.rooms). TypeError or ValueError when no document can hold "
                        "it: NaN, bytes, a key that is not a str...")
      .def(py::init([](py::handle value) { return HookValue{to_value(value)}; }),
           py::arg("value"));

  py::class_<RoomHandle, std::shared_ptr<RoomHandle>>(
      m, "RoomHandle", "A room as its hooks see it (use kasagi.Room, which wraps it)")
      .def_property_readonly("id", [](const RoomHandle& h) { return h.get().id(); })
      .def_property_readonly("version", [](const RoomHandle& h) { return h.get().version(); })
      .def_property_readonly("tick", [](const RoomHandle& h) { return h.get().tick(); })
      .def_property_readonly("state",
                             [](const RoomHandle& h) { return to_python(h.get().state()); })
      .def("get",
           [](const RoomHandle& h, const std::string& path) -> py::object {
             const state::Value* at = nullptr;
             const state::Object* obj = &h.get().state();
             for (const auto& key : pointer(path)) {
               at = obj ? obj->if_contains(key) : nullptr;
               if (!at) return py::none();
               obj = at->if_object();
             }
             return at ? to_python(*at) : to_python(h.get().state());
           })
      .def("connected_players",
           [](const RoomHandle& h) { return h.get().connected_players(); })
      .def("set",
           [](const RoomHandle& h, const std::string& path, py::handle value) {
             auto error = h.get().set(pointer(path), to_value(value));
             if (!error.empty()) throw py::value_error(path + ": " + error);
           })
      .def("patch",
           [](const RoomHandle& h, const std::string& path, py::handle value) {
             auto error = h.get().patch(pointer(path), to_value(value));
             if (!error.empty()) throw py::value_error(path + ": " + error);
           })
      .def("send_event",
           [](const RoomHandle& h, const std::string& name, py::handle data,
              const std::string& to) { return h.get().send_event(name, to_value(data), to); })
      .def("kick", [](const RoomHandle& h, const std::string& player, const std::string& msg) {
        return h.get().kick(player, msg);
      });

  // add_room_type(server, name, patterns, rules, factory, tick_rate): rules are (pattern,
  // types, min, max) tuples; factory(room_id, handle) returns the room's dispatcher, or is
  // None when the type has no hooks; tick_rate: on_tick calls per second (0: the server's).
  m.def("add_room_type",
        [](server::Server& s, const std::string& name, const std::vector<std::string>& patterns,
           const std::vector<std::tuple<std::string, std::vector<std::string>,
                                        std::optional<double>, std::optional<double>>>& rules,
           py::object factory, double tick_rate) {
          room::RoomType type;
          type.name = name;
          type.patterns = patterns;
          type.tick_rate = tick_rate;
          for (const auto& [pattern, types, min, max] : rules) {
            std::string error;
            if (!type.rules.add(pattern, types, min, max, error)) throw py::value_error(error);
          }
          if (!factory.is_none()) {
            auto f = hold(std::move(factory));
            type.make_hooks = [f](const std::string& room_id) -> std::shared_ptr<room::RoomHooks> {
              keep_thread_state();
              py::gil_scoped_acquire gil;
              auto handle = std::make_shared<RoomHandle>();
              try {
                return std::make_shared<PyRoomHooks>((*f)(room_id, handle), handle);
              } catch (py::error_already_set& e) {
                // The dispatcher catches the room type's own errors; this is a bug in it.
                log::error("room " + room_id + ": its hooks cannot start: " + e.what());
                return std::make_shared<BrokenHooks>();
              }
            };
          }
          s.add_room_type(std::move(type));
        },
        py::arg("server"), py::arg("name"), py::arg("patterns"), py::arg("rules"),
        py::arg("factory"), py::arg("tick_rate") = 0.0);
}

}  // namespace kasagi::bindings
