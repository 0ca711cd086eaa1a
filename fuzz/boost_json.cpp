// Boost.JSON compiled into the fuzz build itself (header-only mode), so that its parser is
// instrumented for coverage and sanitizers like our own code.
#include <boost/json/src.hpp>
