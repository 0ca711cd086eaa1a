// The document model: Boost.JSON values. A room's state is an Object whose leaves are
// bool, int64, float64, string or arrays (arrays are leaves). Null never appears as a map
// member of a document (in a merge patch null means "delete"); it may appear inside arrays.
// Integers are always stored as int64 (see normalize in merge_patch.hpp).
#pragma once
#include <boost/json.hpp>

namespace kasagi::state {
using Value = boost::json::value;
using Object = boost::json::object;
using Array = boost::json::array;
}  // namespace kasagi::state
