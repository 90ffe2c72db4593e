// Byte buffers and the text encodings the protocols use (hex, base64), all via OpenSSL.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tsign {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string to_string(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::string to_hex(ByteView data);  // lower case
// Standard base64 with padding, no line breaks.
std::string base64_encode(ByteView data);
// Accepts standard base64 with or without padding, ignoring CR/LF/space (MIME line breaks).
// Returns nullopt on any other character or a bad length.
std::optional<Bytes> base64_decode(std::string_view text);
// base64url without padding (JWT).
std::string base64url_encode(ByteView data);
std::optional<Bytes> base64url_decode(std::string_view text);

// Cryptographically secure random bytes.
Bytes random_bytes(std::size_t n);

}  // namespace tsign
