// libFuzzer target: the message decoder of one wire format (KASAGI_FUZZ_FORMAT is json or
// msgpack). Oracle besides the sanitizers: whatever decodes must encode to bytes that decode
// again to a message with the same encoding (unknown keys drop out in the first round).
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include "protocol/codec.hpp"

using kasagi::protocol::Format;
using kasagi::protocol::Message;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr Format format = Format::KASAGI_FUZZ_FORMAT;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto first = kasagi::protocol::decode(format, bytes);
  const auto* msg = std::get_if<Message>(&first);
  if (!msg) return 0;
  const std::string encoded = kasagi::protocol::encode(format, *msg);
  auto second = kasagi::protocol::decode(format, encoded);
  const auto* again = std::get_if<Message>(&second);
  if (!again || kasagi::protocol::encode(format, *again) != encoded) std::abort();
  return 0;
}
