// kasagi._core: encode / decode of protocol messages, and DecodeError. Messages cross the
// boundary as dicts with the wire keys (type, roomId, payload, version, ...).
#include <pybind11/pybind11.h>
#include <algorithm>
#include <variant>
#include "bindings/bind.hpp"
#include "bindings/convert.hpp"
#include "protocol/codec.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace kasagi::bindings {
namespace {

// kasagi._core.DecodeError; created once by bind_protocol and kept for the process's life.
PyObject* decode_error_type = nullptr;

using protocol::Message;

struct UintKey {
  std::string_view key;
  std::optional<std::uint64_t> Message::*field;
};
constexpr UintKey kUintKeys[] = {
    {"version", &Message::version},     {"baseVersion", &Message::base_version},
    {"tick", &Message::tick},           {"requestId", &Message::request_id},
    {"timestamp", &Message::timestamp},
};

struct TextKey {
  std::string_view key;
  std::optional<std::string> Message::*field;
};
constexpr TextKey kTextKeys[] = {{"epoch", &Message::epoch}, {"path", &Message::path}};

protocol::Format to_format(std::string_view name) {
  if (name == "json") return protocol::Format::json;
  if (name == "msgpack") return protocol::Format::msgpack;
  throw py::value_error("format: must be 'json' or 'msgpack', not '" + std::string(name) + "'");
}

std::string text(py::handle v, std::string_view key) {
  if (!PyUnicode_Check(v.ptr())) throw py::value_error(std::string(key) + ": must be a str");
  return v.cast<std::string>();
}

// Returns the message a dict with wire keys describes; a None value counts as absent.
// Throws ValueError naming the offending key.
Message to_message(py::handle obj) {
  if (!PyDict_Check(obj.ptr())) throw py::type_error("message must be a dict");
  Message m;
  bool has_type = false;
  for (auto [k, v] : py::reinterpret_borrow<py::dict>(obj)) {
    if (!PyUnicode_Check(k.ptr())) throw py::value_error("message keys must be str");
    std::string key = k.cast<std::string>();
    if (v.is_none()) continue;
    if (key == "type") {
      std::string name = text(v, key);
      auto t = protocol::type_from_string(name);
      if (!t) throw py::value_error("type: unknown message type '" + name + "'");
      m.type = *t;
      has_type = true;
    } else if (key == "roomId") {
      m.room_id = text(v, key);
    } else if (key == "payload") {
      if (!PyDict_Check(v.ptr())) throw py::value_error("payload: must be a dict");
      m.payload = std::move(to_value(v).get_object());
    } else if (auto u = std::find_if(std::begin(kUintKeys), std::end(kUintKeys),
                                     [&](const UintKey& f) { return f.key == key; });
               u != std::end(kUintKeys)) {
      const std::string error = key + ": must be an int in 0..2**64-1";
      if (!PyLong_Check(v.ptr()) || PyBool_Check(v.ptr())) throw py::value_error(error);
      unsigned long long n = PyLong_AsUnsignedLongLong(v.ptr());
      if (n == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
        PyErr_Clear();  // OverflowError: negative or too large
        throw py::value_error(error);
      }
      m.*(u->field) = n;
    } else if (auto s = std::find_if(std::begin(kTextKeys), std::end(kTextKeys),
                                     [&](const TextKey& f) { return f.key == key; });
               s != std::end(kTextKeys)) {
      m.*(s->field) = text(v, key);
    } else {
      throw py::value_error("unknown message key '" + key + "'");
    }
  }
  if (!has_type) throw py::value_error("type: missing");
  return m;
}

// Returns the dict for `m`, with only the keys that are present.
py::dict to_dict(const Message& m) {
  py::dict out;
  out["type"] = py::str(std::string(protocol::to_string(m.type)));
  if (!m.room_id.empty()) out["roomId"] = py::str(m.room_id);
  if (m.payload) out["payload"] = to_python(*m.payload);
  for (const auto& [key, field] : kUintKeys)
    if (m.*field) out[py::str(std::string(key))] = py::int_(*(m.*field));
  for (const auto& [key, field] : kTextKeys)
    if (m.*field) out[py::str(std::string(key))] = py::str(*(m.*field));
  return out;
}

// The contiguous bytes of a bytes-like object (bytes, bytearray, memoryview), held while
// this lives.
class Bytes {
 public:
  explicit Bytes(py::handle obj) {
    if (PyObject_GetBuffer(obj.ptr(), &buffer_, PyBUF_SIMPLE) != 0) {
      PyErr_Clear();
      throw py::type_error("data must be bytes, a bytes-like object or str");
    }
  }
  ~Bytes() { PyBuffer_Release(&buffer_); }
  Bytes(const Bytes&) = delete;
  Bytes& operator=(const Bytes&) = delete;
  std::string_view view() const {
    return {static_cast<const char*>(buffer_.buf), static_cast<std::size_t>(buffer_.len)};
  }

 private:
  Py_buffer buffer_{};
};

// Raises kasagi._core.DecodeError carrying the error's fields as attributes.
[[noreturn]] void raise(const protocol::DecodeError& err) {
  py::object exc = py::reinterpret_borrow<py::object>(decode_error_type)(err.message);
  exc.attr("code") = py::str(std::string(protocol::to_string(err.code)));
  exc.attr("message") = py::str(err.message);
  exc.attr("request_id") = err.request_id ? py::object(py::int_(*err.request_id)) : py::none();
  exc.attr("room_id") = err.room_id.empty() ? py::object(py::none()) : py::str(err.room_id);
  PyErr_SetObject(decode_error_type, exc.ptr());
  throw py::error_already_set();
}

}  // namespace

void bind_protocol(py::module_& m) {
  decode_error_type = PyErr_NewExceptionWithDoc(
      "kasagi._core.DecodeError",
      "A frame that is not a valid Kasagi message. Attributes: code ('BAD_MESSAGE' or "
      "'UNKNOWN_TYPE'), message, request_id (int or None) and room_id (str or None), the "
      "last two read from the frame when they could be.",
      PyExc_ValueError, nullptr);
  if (!decode_error_type) throw py::error_already_set();
  m.attr("DecodeError") = py::reinterpret_borrow<py::object>(decode_error_type);

  m.def(
      "encode",
      [](std::string_view format, py::handle message) {
        std::string bytes = protocol::encode(to_format(format), to_message(message));
        return py::bytes(bytes);
      },
      "format"_a, "message"_a,
      "Encodes a message dict (wire keys; None values are omitted) as 'json' or 'msgpack' "
      "bytes. Raises ValueError for a malformed message.");

  m.def(
      "decode",
      [](std::string_view format, py::handle data) {
        protocol::Format f = to_format(format);
        protocol::DecodeResult result;
        if (PyUnicode_Check(data.ptr())) {
          Py_ssize_t size = 0;
          const char* p = PyUnicode_AsUTF8AndSize(data.ptr(), &size);
          if (!p) throw py::error_already_set();
          result = protocol::decode(f, {p, static_cast<std::size_t>(size)});
        } else {
          Bytes bytes(data);
          result = protocol::decode(f, bytes.view());
        }
        if (auto* err = std::get_if<protocol::DecodeError>(&result)) raise(*err);
        return to_dict(std::get<Message>(result));
      },
      "format"_a, "data"_a,
      "Decodes one frame (bytes, or str for JSON) into a message dict with the wire keys that "
      "are present. Raises DecodeError when the frame is not a valid message.");
}

}  // namespace kasagi::bindings
