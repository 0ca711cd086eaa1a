// The files of one directory, served over plain HTTP next to the WebSocket endpoint
// (`kasagi serve --static-dir DIR`): maps a request path to a regular file inside the
// directory, and refuses every path that would leave it. No sockets here; HttpSession does
// the I/O.
#pragma once
#include <filesystem>
#include <string_view>

namespace kasagi::net {

class StaticFiles {
 public:
  enum class Outcome { found, bad_target, not_found };

  struct Lookup {
    Outcome outcome = Outcome::not_found;
    std::filesystem::path file;     // found: the canonical path of a regular file under root
    std::string_view content_type;  // found: the Content-Type to send it with
  };

  // Throws std::invalid_argument when `root` is not an existing directory.
  explicit StaticFiles(const std::filesystem::path& root);

  // Returns the file that `path` (a request target without its query) names:
  // - bad_target when the path is malformed or tries to climb: not starting with '/', a bad
  //   %-escape, a "." or ".." segment (also %-encoded), a NUL byte or a backslash;
  // - not_found when nothing is there, when it is not a regular file, when a segment is a
  //   hidden name (starting with '.'), or when a symlink resolves outside the root;
  // - found otherwise. A directory stands for its index.html ("/" is the root's).
  // Costs a few stat calls; reads no file.
  Lookup lookup(std::string_view path) const;

  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;  // canonical: symlinks resolved, so prefixes compare exactly
};

// Returns the Content-Type for a file name by its extension (application/octet-stream when
// unknown). Text types carry charset=utf-8.
std::string_view content_type_for(const std::filesystem::path& file);

}  // namespace kasagi::net
