#include "net/static_files.hpp"

#include <algorithm>
#include <cctype>
#include <optional>
#include <stdexcept>
#include <string>
#include "protocol/percent_decode.hpp"

namespace kasagi::net {

namespace fs = std::filesystem;

namespace {

// True when `file` is `root` or below it (both canonical).
bool inside(const fs::path& root, const fs::path& file) {
  return std::mismatch(root.begin(), root.end(), file.begin(), file.end()).first == root.end();
}

}  // namespace

StaticFiles::StaticFiles(const fs::path& root) {
  std::error_code ec;
  root_ = fs::canonical(root, ec);
  if (ec || !fs::is_directory(root_, ec)) {
    throw std::invalid_argument("static_dir: '" + root.string() + "' is not a directory");
  }
}

StaticFiles::Lookup StaticFiles::lookup(std::string_view path) const {
  // Decoding comes before any check, so "%2e%2e" is refused exactly like "..".
  const auto decoded = protocol::percent_decode(path);
  if (!decoded || decoded->empty() || decoded->front() != '/') return {Outcome::bad_target, {}, {}};
  fs::path relative;
  bool hidden = false;
  std::string_view rest = std::string_view(*decoded).substr(1);
  while (true) {
    const auto slash = rest.find('/');
    const auto segment = rest.substr(0, slash);
    if (segment == "." || segment == ".." ||
        segment.find_first_of(std::string_view("\0\\", 2)) != std::string_view::npos) {
      return {Outcome::bad_target, {}, {}};
    }
    hidden = hidden || segment.starts_with('.');
    if (!segment.empty()) relative /= segment;  // "a//b" and a trailing '/' add nothing
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  if (hidden) return {Outcome::not_found, {}, {}};  // .git, .env...: never served

  // canonical() resolves every symlink, so a link that points out of the root shows up
  // here as a path outside it.
  std::error_code ec;
  fs::path file = fs::canonical(root_ / relative, ec);
  if (!ec && fs::is_directory(file, ec)) file = fs::canonical(file / "index.html", ec);
  if (ec || !inside(root_, file) || !fs::is_regular_file(file, ec)) {
    return {Outcome::not_found, {}, {}};
  }
  return {Outcome::found, file, content_type_for(file)};
}

std::string_view content_type_for(const fs::path& file) {
  struct Type {
    std::string_view extension, content_type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".ico", "image/x-icon"},
      {".wasm", "application/wasm"},
      {".woff2", "font/woff2"},
  };
  std::string extension = file.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& type : kTypes) {
    if (type.extension == extension) return type.content_type;
  }
  return "application/octet-stream";
}

}  // namespace kasagi::net
