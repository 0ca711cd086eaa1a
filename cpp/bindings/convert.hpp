// Conversion between Python objects and document values (boost::json::value).
#pragma once
#include <pybind11/pybind11.h>
#include "state/value.hpp"

namespace kasagi::bindings {

// Returns the value of a Python object made of dict (str keys), list, tuple, str, bool, int,
// float and None. Throws TypeError for any other type (bytes included) or a non-str dict
// key, and ValueError for an int outside int64, a NaN or infinite float, or nesting deeper
// than any document may be.
state::Value to_value(pybind11::handle obj);

// Returns the Python object for `v`: dict, list, str, bool, int, float or None.
pybind11::object to_python(const state::Value& v);
pybind11::object to_python(const state::Object& v);  // a dict

}  // namespace kasagi::bindings
