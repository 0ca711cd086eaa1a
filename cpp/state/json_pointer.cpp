#include "state/json_pointer.hpp"

namespace kasagi::state {

std::optional<Path> parse_pointer(std::string_view pointer) {
  Path path;
  if (pointer.empty()) return path;
  if (pointer.front() != '/') return std::nullopt;
  std::string token;
  for (std::size_t i = 1; i <= pointer.size(); ++i) {
    if (i == pointer.size() || pointer[i] == '/') {
      path.push_back(std::move(token));
      token.clear();
    } else if (pointer[i] == '~') {
      // RFC 6901: "~0" is '~' and "~1" is '/'; anything else after '~' is malformed.
      if (i + 1 == pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1'))
        return std::nullopt;
      token += pointer[++i] == '0' ? '~' : '/';
    } else {
      token += pointer[i];
    }
  }
  return path;
}

std::string format_pointer(std::span<const std::string> path) {
  std::string out;
  for (const auto& token : path) append_token(out, token);
  return out;
}

void append_token(std::string& out, std::string_view token) {
  out += '/';
  for (char c : token) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
}

}  // namespace kasagi::state
