#include "bindings/convert.hpp"

#include <cmath>
#include <string>

namespace py = pybind11;

namespace kasagi::bindings {
namespace {

// Far deeper than any document may nest (see ServerConfig::max_state_depth); it only keeps a
// self-referencing or absurdly deep Python object from overflowing the C++ stack.
constexpr int kMaxDepth = 500;

std::string_view utf8(py::handle str) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(str.ptr(), &size);
  if (!data) throw py::error_already_set();  // e.g. a lone surrogate
  return {data, static_cast<std::size_t>(size)};
}

std::string type_name(py::handle obj) { return Py_TYPE(obj.ptr())->tp_name; }

state::Value convert(py::handle obj, int depth) {
  PyObject* o = obj.ptr();
  if (o == Py_None) return nullptr;
  if (PyBool_Check(o)) return o == Py_True;  // before PyLong_Check: bool is an int
  if (PyLong_Check(o)) {
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow) throw py::value_error("integer out of range: values must fit in int64");
    if (n == -1 && PyErr_Occurred()) throw py::error_already_set();
    return static_cast<std::int64_t>(n);
  }
  if (PyFloat_Check(o)) {
    double d = PyFloat_AS_DOUBLE(o);
    if (!std::isfinite(d)) throw py::value_error("non-finite number: NaN and infinity are not allowed");
    return d;
  }
  if (PyUnicode_Check(o)) return state::Value(utf8(obj));
  if (depth >= kMaxDepth) throw py::value_error("nesting too deep");
  if (PyDict_Check(o)) {
    state::Value out(boost::json::object_kind);
    auto& map = out.get_object();
    map.reserve(static_cast<std::size_t>(PyDict_Size(o)));
    for (auto [key, item] : py::reinterpret_borrow<py::dict>(obj)) {
      if (!PyUnicode_Check(key.ptr()))
        throw py::type_error("dict keys must be str, not " + type_name(key));
      map.insert_or_assign(utf8(key), convert(item, depth + 1));
    }
    return out;
  }
  if (PyList_Check(o) || PyTuple_Check(o)) {
    state::Value out(boost::json::array_kind);
    auto& array = out.get_array();
    for (auto item : obj) array.push_back(convert(item, depth + 1));
    return out;
  }
  throw py::type_error("unsupported type " + type_name(obj) +
                       ": expected dict, list, tuple, str, int, float, bool or None");
}

}  // namespace

state::Value to_value(py::handle obj) { return convert(obj, 0); }

py::object to_python(const state::Value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return py::none();
    case boost::json::kind::bool_:
      return py::bool_(v.get_bool());
    case boost::json::kind::int64:
      return py::int_(v.get_int64());
    case boost::json::kind::uint64:
      return py::int_(v.get_uint64());
    case boost::json::kind::double_:
      return py::float_(v.get_double());
    case boost::json::kind::string:
      return py::str(v.get_string().data(), v.get_string().size());
    case boost::json::kind::array: {
      py::list out(v.get_array().size());
      std::size_t i = 0;
      for (const auto& item : v.get_array()) out[i++] = to_python(item);
      return out;
    }
    case boost::json::kind::object:
      return to_python(v.get_object());
  }
  return py::none();
}

py::object to_python(const state::Object& v) {
  py::dict out;
  for (const auto& [key, item] : v) out[py::str(key.data(), key.size())] = to_python(item);
  return out;
}

}  // namespace kasagi::bindings
