// kasagi._core: merge patch functions and Document, the delta engine over one document.
#include <pybind11/pybind11.h>
#include "bindings/bind.hpp"
#include "bindings/convert.hpp"
#include "state/delta_builder.hpp"
#include "state/json_pointer.hpp"
#include "state/merge_patch.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace kasagi::bindings {
namespace {

// A document and the delta of the changes made to it since the last take_delta().
struct Document {
  state::Object doc;
  state::DeltaBuilder delta;
};

state::Object to_object(py::handle obj, const char* what) {
  if (!PyDict_Check(obj.ptr())) throw py::type_error(std::string(what) + " must be a dict");
  return std::move(to_value(obj).get_object());
}

}  // namespace

void bind_state(py::module_& m) {
  m.def(
      "merge_patch_apply",
      [](py::handle target, py::handle patch) {
        state::Value result = to_value(target);
        state::apply_merge_patch(result, to_value(patch));
        return to_python(result);
      },
      "target"_a, "patch"_a,
      "Returns `target` with the JSON Merge Patch (RFC 7386) `patch` applied. The inputs are "
      "not modified.");

  m.def(
      "merge_patch_diff",
      [](py::handle a, py::handle b) {
        return to_python(state::merge_patch_diff(to_value(a), to_value(b)));
      },
      "a"_a, "b"_a,
      "Returns the minimal JSON Merge Patch that turns `a` into `b` ({} when they are equal).");

  py::class_<Document>(m, "Document",
                       "A document (nested dicts) plus the delta engine that records the "
                       "changes made to it between two take_delta() calls.")
      .def(py::init([](py::handle initial) {
             // Applied as a merge patch to an empty document: None members are dropped.
             auto doc = std::make_unique<Document>();
             state::Value root(boost::json::object_kind);
             state::apply_merge_patch(root, to_object(initial, "initial"));
             doc->doc = std::move(root.get_object());
             return doc;
           }),
           "initial"_a = py::dict())
      .def(
          "apply",
          [](Document& self, py::handle patch, std::string_view path) {
            auto parsed = state::parse_pointer(path);
            if (!parsed) throw py::value_error("path: malformed JSON Pointer: " + std::string(path));
            if (parsed->empty() && !PyDict_Check(patch.ptr()))
              throw py::value_error("patch: must be a dict when applied at the root");
            return self.delta.apply(self.doc, *parsed, to_value(patch));
          },
          "patch"_a, "path"_a = "",
          "Applies the merge patch `patch` at the JSON Pointer `path`, creating intermediate "
          "dicts as needed. Returns True if the document changed.")
      .def(
          "take_delta",
          [](Document& self) { return to_python(self.delta.take(self.doc)); },
          "Returns the minimal merge patch from the document at the previous take_delta() (or "
          "construction) to now, and starts a new batch.")
      .def_property_readonly(
          "state", [](const Document& self) { return to_python(self.doc); },
          "A copy of the document.");
}

}  // namespace kasagi::bindings
