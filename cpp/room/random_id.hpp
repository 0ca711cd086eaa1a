// Unguessable identifiers from the kernel's CSPRNG (session tokens must not be predictable).
#pragma once
#include <cstddef>
#include <string>

namespace kasagi::room {

// Returns `bytes` random bytes as lowercase hex (2 * bytes characters).
std::string random_hex(std::size_t bytes);

}  // namespace kasagi::room
