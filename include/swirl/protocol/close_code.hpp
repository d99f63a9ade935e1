#pragma once
/// WebSocket close status codes (RFC 6455 §7.4) and the rule for which may appear on the wire.

#include <cstdint>

namespace swirl::close_code {

inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
/// Never sent: reported when a close frame carried no status code.
inline constexpr std::uint16_t no_status = 1005;
/// Never sent: reported when the connection dropped without a close frame.
inline constexpr std::uint16_t abnormal = 1006;
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t mandatory_extension = 1010;
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t service_restart = 1012;
inline constexpr std::uint16_t try_again_later = 1013;
inline constexpr std::uint16_t bad_gateway = 1014;

/// Whether `code` may be sent in a close frame: 1000–1003, 1007–1014 (IANA-registered) and 3000–4999.
constexpr bool is_valid(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

} // namespace swirl::close_code
