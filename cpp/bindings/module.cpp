// The kasagi._core extension module: the only translation units that include pybind11.
// One bind_<area> function per area, called in order. The Pythonic API, defaults and docs
// live in the kasagi package (python/kasagi); this layer only converts and releases the GIL.
#include <pybind11/pybind11.h>
#include "bindings/bind.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "Kasagi native core (use the kasagi package, not this module directly)";
  kasagi::bindings::bind_state(m);
  kasagi::bindings::bind_protocol(m);
  kasagi::bindings::bind_server(m);
  kasagi::bindings::bind_broker(m);
  kasagi::bindings::bind_hooks(m);
}
