// One line per event that matters, to stderr: "2026-11-23T10:00:00.123Z INFO listening on ...".
// Never per message: the hot path must not log. Thread-safe (lines never interleave).
#pragma once
#include <string_view>

namespace kasagi::log {

enum class Level { debug = 0, info = 1, warning = 2, error = 3, off = 4 };

// Returns false (and changes nothing) for an unknown name.
bool set_level(std::string_view name);
bool enabled(Level level);
void write(Level level, std::string_view line);

inline void debug(std::string_view s) { if (enabled(Level::debug)) write(Level::debug, s); }
inline void info(std::string_view s) { if (enabled(Level::info)) write(Level::info, s); }
inline void warning(std::string_view s) { if (enabled(Level::warning)) write(Level::warning, s); }
inline void error(std::string_view s) { if (enabled(Level::error)) write(Level::error, s); }

}  // namespace kasagi::log
