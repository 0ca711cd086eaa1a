#pragma once
#include <pybind11/pybind11.h>

namespace kasagi::bindings {
void bind_state(pybind11::module_& m);     // merge patch, Document (delta engine)
void bind_protocol(pybind11::module_& m);  // encode / decode, DecodeError
void bind_server(pybind11::module_& m);    // ServerConfig, Server
void bind_broker(pybind11::module_& m);    // Broker, Subscription (test surface)
void bind_hooks(pybind11::module_& m);     // RoomHandle, add_room_type (room types, hooks)
}  // namespace kasagi::bindings
