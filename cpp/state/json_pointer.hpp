// JSON Pointer (RFC 6901) paths into a document, e.g. "/players/p1/pos".
#pragma once
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kasagi::state {

using Path = std::vector<std::string>;

// Parses "" (the root) or "/a/b~1c" into {"a","b/c"}. Returns nullopt when malformed
// (not starting with '/', or a '~' not followed by '0' or '1').
std::optional<Path> parse_pointer(std::string_view pointer);

// The inverse of parse_pointer.
std::string format_pointer(std::span<const std::string> path);
// The same, appended to `out` (which may keep its buffer from one call to the next).
void append_pointer(std::string& out, std::span<const std::string> path);

}  // namespace kasagi::state
