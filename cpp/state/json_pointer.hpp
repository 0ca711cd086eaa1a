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
// Appends "/" and `token`, escaped, to `out`: one more step of a pointer being built.
void append_token(std::string& out, std::string_view token);

}  // namespace kasagi::state
