#pragma once
/// Negotiating permessage-deflate (RFC 7692 §5, §7.1) on the server side: the client's offers, the server's
/// options, the agreed parameters and the `Sec-WebSocket-Extensions` response. Pure parsing; the codec that uses the
/// outcome is swirl/protocol/deflate.hpp (zlib).
///
/// The default handshake's way:
///
///     swirl::DeflateOptions options;
///     options.enabled = swirl::deflate_available;
///     if (const auto params = swirl::accept_deflate(req, res, options))  // sets Sec-WebSocket-Extensions
///         /* compress with Deflater::for_server(*params, options), inflate with Inflater::for_server(*params) */;
///
/// A handshake hook that wants a say sees the offers, picks or adjusts, and answers (or not), as it does with
/// subprotocols:
///
///     const auto offers = swirl::deflate_offers(req);          // the valid ones, in the client's order
///     if (!offers.empty() && !req.query_param("nocompress")) {
///         swirl::DeflateParams p = swirl::accept_deflate_offer(offers.front(), options);
///         p.server_no_context_takeover = true;                  // may only add restrictions the RFC allows
///         res.set_header("Sec-WebSocket-Extensions", swirl::deflate_response(p));
///     }
///
/// Whoever runs the connection then reads back what the response says: `parse_deflate_response` on the response's
/// `Sec-WebSocket-Extensions`, checked with `is_valid_deflate_response` against the request.
///
/// Choices where RFC 7692 leaves one:
///  - Offers are taken in the client's order and the first valid one is accepted: every valid offer is supported,
///    so an offer is only declined for an unknown, duplicate, value-less (where a value is needed), valued (where
///    none is allowed), out-of-range or unparsable parameter. None valid: no extension, the connection proceeds
///    uncompressed (the handshake never fails over extensions).
///  - Extension and parameter names compare case-insensitively (parameter names are case-insensitive in HTTP,
///    RFC 9110 §5.6.6); values accept the quoted-string form (RFC 6455 §9.1: after unescaping they must be tokens).
///  - `server_max_window_bits=8` is accepted and answered with 8. zlib cannot compress raw deflate with a 256-byte
///    window, so the Deflater uses 9 instead: zlib never emits a distance beyond the window size minus 262 (its
///    MIN_LOOKAHEAD), so a 512-byte window reaches at most 250 bytes back, which a 256-byte window decodes. Node's
///    zlib binding does the same (8 becomes 9); uWebSockets answers 9 (more than offered, which the RFC forbids) and
///    ASP.NET declines the offer.
///  - An offered `client_no_context_takeover` is echoed, so the server may reset (or share) its inflater after each
///    message; an offered `client_max_window_bits=N` is echoed as min(N, option), so the server inflates with the
///    smaller window. A `server_max_window_bits` below 15 is announced even when not offered (RFC 7692 §7.1.2.1 allows
///    it), so the client can size its inflater.

#include <swirl/protocol/detail/ascii.hpp>
#include <swirl/protocol/detail/extension_list.hpp>
#include <swirl/protocol/http_request.hpp>
#include <swirl/protocol/http_response.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace swirl {

/// Whether this build has the codec (swirl/protocol/deflate.hpp, zlib): `SWIRL_HAS_DEFLATE`, set by meson's
/// `deflate` feature. Negotiation compiles either way; a server must not agree to compress without it.
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
inline constexpr bool deflate_available = true;
#else
inline constexpr bool deflate_available = false;
#endif

inline constexpr std::string_view permessage_deflate = "permessage-deflate";

/// One `permessage-deflate` offer of a client (RFC 7692 §7.1), validated.
struct DeflateOffer {
    bool server_no_context_takeover = false;  ///< the client asks the server to reset its compressor per message
    bool client_no_context_takeover = false;  ///< the client hints that it resets its own
    std::uint8_t server_max_window_bits = 0;  ///< 8..15: the largest window the server may compress with; 0: not offered
    bool accepts_client_max_window_bits = false;  ///< `client_max_window_bits` present: the server may limit the client
    std::uint8_t client_max_window_bits = 0;  ///< its value, 8..15, when it had one (the client's own limit); else 0

    bool operator==(const DeflateOffer&) const = default;
};

/// The agreed parameters, exactly as the response carries them (RFC 7692 §7.1): what the server compresses and
/// inflates with.
struct DeflateParams {
    bool server_no_context_takeover = false;  ///< the server resets its compressor after each message
    bool client_no_context_takeover = false;  ///< the client resets its compressor; the server may reset its inflater
    std::uint8_t server_max_window_bits = 0;  ///< 8..15 as sent; 0: not sent (15)
    std::uint8_t client_max_window_bits = 0;  ///< 8..15 as sent; 0: not sent (15)

    /// The window the server compresses with (8 is compressed with zlib's 9; see `Deflater`).
    int server_window_bits() const noexcept { return server_max_window_bits != 0 ? server_max_window_bits : 15; }
    /// The window the client compresses with, and the server inflates with.
    int client_window_bits() const noexcept { return client_max_window_bits != 0 ? client_max_window_bits : 15; }

    bool operator==(const DeflateParams&) const = default;
};

/// The server's configuration. Window bits outside 8..15 are clamped into it.
struct DeflateOptions {
    bool enabled = false;                      ///< negotiate at all (only where `deflate_available`)
    std::uint8_t server_max_window_bits = 15;  ///< the largest window the server compresses with (memory per compressor)
    std::uint8_t client_max_window_bits = 15;  ///< asked of clients that accept a limit (memory per inflater)
    bool server_no_context_takeover = false;   ///< always reset the compressor: needed to share compressed bytes
    bool client_no_context_takeover = false;   ///< ask clients to reset theirs: lets the server reset or share its inflater
    int level = 6;                             ///< zlib compression level 0..9
    int mem_level = 8;                         ///< zlib memLevel 1..9: (1 << (mem_level + 9)) bytes per compressor
    std::size_t threshold = 0;                 ///< messages shorter than this are sent uncompressed (RSV1 clear)
};

namespace detail {

constexpr std::uint8_t clamp_window_bits(std::uint8_t bits) noexcept { return std::clamp<std::uint8_t>(bits, 8, 15); }

/// "8".."15" without leading zeros (RFC 7692 §7.1.2.1), after quoted-string unescaping; 0 when not.
inline std::uint8_t parse_window_bits(const ExtensionParam& p) noexcept {
    char buf[2];
    std::size_t n = 0;
    if (!p.has_value || !unescape_param(p, buf, sizeof buf, n) || n == 0) return 0;
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (n == 1) return buf[0] == '8' || buf[0] == '9' ? static_cast<std::uint8_t>(buf[0] - '0') : 0;
    if (buf[0] != '1' || !digit(buf[1]) || buf[1] > '5') return 0;
    return static_cast<std::uint8_t>(10 + (buf[1] - '0'));
}

enum class DeflateParamName { server_no_context_takeover, client_no_context_takeover, server_max_window_bits, client_max_window_bits, unknown };

inline DeflateParamName deflate_param_name(std::string_view name) noexcept {
    if (iequals(name, "server_no_context_takeover")) return DeflateParamName::server_no_context_takeover;
    if (iequals(name, "client_no_context_takeover")) return DeflateParamName::client_no_context_takeover;
    if (iequals(name, "server_max_window_bits")) return DeflateParamName::server_max_window_bits;
    if (iequals(name, "client_max_window_bits")) return DeflateParamName::client_max_window_bits;
    return DeflateParamName::unknown;
}

/// The four parameters of one element as an offer (`response` false) or a response (true): nullopt on anything
/// RFC 7692 §7 makes the server decline, or the client fail the connection on.
inline std::optional<DeflateParams> deflate_element_params(const ExtensionElement& e, bool response,
                                                           bool* bare_client_window = nullptr) noexcept {
    if (e.malformed || e.overflow) return std::nullopt;
    DeflateParams p;
    bool seen[4] = {};
    bool bare = false;
    for (std::size_t i = 0; i < e.param_count; ++i) {
        const ExtensionParam& param = e.params[i];
        const auto name = deflate_param_name(param.name);
        if (name == DeflateParamName::unknown) return std::nullopt;
        const auto index = static_cast<std::size_t>(name);
        if (seen[index]) return std::nullopt;
        seen[index] = true;
        switch (name) {
        case DeflateParamName::server_no_context_takeover:
        case DeflateParamName::client_no_context_takeover:
            if (param.has_value) return std::nullopt;
            (name == DeflateParamName::server_no_context_takeover ? p.server_no_context_takeover : p.client_no_context_takeover) = true;
            break;
        case DeflateParamName::server_max_window_bits:
            p.server_max_window_bits = parse_window_bits(param);
            if (p.server_max_window_bits == 0) return std::nullopt;
            break;
        case DeflateParamName::client_max_window_bits:
            if (!param.has_value && !response) {
                bare = true;  // an offer may carry it bare; a response must give the value
                break;
            }
            p.client_max_window_bits = parse_window_bits(param);
            if (p.client_max_window_bits == 0) return std::nullopt;
            break;
        case DeflateParamName::unknown: break;
        }
    }
    if (bare_client_window) *bare_client_window = bare;
    return p;
}

} // namespace detail

/// Appends the valid `permessage-deflate` offers of one `Sec-WebSocket-Extensions` field value to `out`, in order.
/// Other extensions are skipped, and so are offers RFC 7692 §7 makes the server decline.
inline void append_deflate_offers(std::string_view field_value, std::vector<DeflateOffer>& out) {
    detail::ExtensionListParser parser(field_value);
    detail::ExtensionElement e;
    while (parser.next(e)) {
        if (!detail::iequals(e.name, permessage_deflate)) continue;
        bool bare_client_window = false;
        const auto p = detail::deflate_element_params(e, false, &bare_client_window);
        if (!p) continue;
        DeflateOffer offer;
        offer.server_no_context_takeover = p->server_no_context_takeover;
        offer.client_no_context_takeover = p->client_no_context_takeover;
        offer.server_max_window_bits = p->server_max_window_bits;
        offer.accepts_client_max_window_bits = bare_client_window || p->client_max_window_bits != 0;
        offer.client_max_window_bits = p->client_max_window_bits;
        out.push_back(offer);
    }
}

/// The valid `permessage-deflate` offers of a field value, in order.
inline std::vector<DeflateOffer> deflate_offers(std::string_view field_value) {
    std::vector<DeflateOffer> out;
    append_deflate_offers(field_value, out);
    return out;
}

/// The valid `permessage-deflate` offers of every `Sec-WebSocket-Extensions` field of `req`, in the client's order
/// of preference (fields in order, then elements in order).
inline std::vector<DeflateOffer> deflate_offers(const Request& req) {
    std::vector<DeflateOffer> out;
    for (const auto& h : req.headers)
        if (detail::iequals(h.name, "Sec-WebSocket-Extensions")) append_deflate_offers(h.value, out);
    return out;
}

/// The server's answer to `offer` under `options` (RFC 7692 §7.1). Every valid offer can be accepted:
///  - server_no_context_takeover: offered or forced by the options;
///  - client_no_context_takeover: offered (echoed) or asked for by the options;
///  - server_max_window_bits: min(offered, option) when offered; the option when below 15; else not sent;
///  - client_max_window_bits: only if the offer has it: min(its value or 15, option), not sent when 15.
/// The result always passes `is_valid_deflate_response(offer, result)`; `options.enabled` is not looked at.
inline DeflateParams accept_deflate_offer(const DeflateOffer& offer, const DeflateOptions& options) noexcept {
    DeflateParams p;
    p.server_no_context_takeover = offer.server_no_context_takeover || options.server_no_context_takeover;
    p.client_no_context_takeover = offer.client_no_context_takeover || options.client_no_context_takeover;
    const std::uint8_t server_bits = detail::clamp_window_bits(options.server_max_window_bits);
    if (offer.server_max_window_bits != 0) p.server_max_window_bits = std::min(offer.server_max_window_bits, server_bits);
    else if (server_bits < 15) p.server_max_window_bits = server_bits;
    if (offer.accepts_client_max_window_bits) {
        std::uint8_t client_bits = detail::clamp_window_bits(options.client_max_window_bits);
        if (offer.client_max_window_bits != 0) client_bits = std::min(client_bits, offer.client_max_window_bits);
        if (client_bits < 15) p.client_max_window_bits = client_bits;
    }
    return p;
}

/// The agreed parameters for the first of `offers` (the client's preference); nullopt when `options.enabled` is
/// false or there is no offer.
inline std::optional<DeflateParams> negotiate_deflate(std::span<const DeflateOffer> offers, const DeflateOptions& options) noexcept {
    if (!options.enabled || offers.empty()) return std::nullopt;
    return accept_deflate_offer(offers.front(), options);
}

/// `negotiate_deflate` over the offers of `req`.
inline std::optional<DeflateParams> negotiate_deflate(const Request& req, const DeflateOptions& options) {
    if (!options.enabled) return std::nullopt;
    const auto offers = deflate_offers(req);
    return negotiate_deflate(offers, options);
}

/// The `Sec-WebSocket-Extensions` response value for `p`: `permessage-deflate` and the parameters it carries.
inline std::string deflate_response(const DeflateParams& p) {
    std::string out(permessage_deflate);
    if (p.server_no_context_takeover) out += "; server_no_context_takeover";
    if (p.client_no_context_takeover) out += "; client_no_context_takeover";
    if (p.server_max_window_bits != 0) out += "; server_max_window_bits=" + std::to_string(p.server_max_window_bits);
    if (p.client_max_window_bits != 0) out += "; client_max_window_bits=" + std::to_string(p.client_max_window_bits);
    return out;
}

/// The `Sec-WebSocket-Extensions` request value a client sends to make `offer` (the client side of negotiation):
/// `permessage-deflate` and the parameters it carries; `deflate_offers` reads it back as `offer`.
inline std::string deflate_offer_value(const DeflateOffer& offer) {
    std::string out(permessage_deflate);
    if (offer.server_no_context_takeover) out += "; server_no_context_takeover";
    if (offer.client_no_context_takeover) out += "; client_no_context_takeover";
    if (offer.server_max_window_bits != 0) out += "; server_max_window_bits=" + std::to_string(offer.server_max_window_bits);
    if (offer.client_max_window_bits != 0) out += "; client_max_window_bits=" + std::to_string(offer.client_max_window_bits);
    else if (offer.accepts_client_max_window_bits) out += "; client_max_window_bits";
    return out;
}

/// Parses a response value: exactly one `permessage-deflate` element with parameters allowed in a response
/// (`client_max_window_bits` needs a value there). Nullopt otherwise, including for any other extension.
inline std::optional<DeflateParams> parse_deflate_response(std::string_view field_value) noexcept {
    detail::ExtensionListParser parser(field_value);
    detail::ExtensionElement e;
    if (!parser.next(e) || !detail::iequals(e.name, permessage_deflate)) return std::nullopt;
    const auto p = detail::deflate_element_params(e, true);
    detail::ExtensionElement more;
    if (!p || parser.next(more)) return std::nullopt;
    return p;
}

/// Whether `response` is a valid acceptance of `offer` (RFC 7692 §7.1): it keeps an offered
/// server_no_context_takeover, answers an offered server_max_window_bits with the same or a smaller value, and
/// sends client_max_window_bits only when offered, no larger than an offered value.
inline bool is_valid_deflate_response(const DeflateOffer& offer, const DeflateParams& response) noexcept {
    if (offer.server_no_context_takeover && !response.server_no_context_takeover) return false;
    if (offer.server_max_window_bits != 0 &&
        (response.server_max_window_bits == 0 || response.server_max_window_bits > offer.server_max_window_bits))
        return false;
    if (response.client_max_window_bits != 0) {
        if (!offer.accepts_client_max_window_bits) return false;
        if (offer.client_max_window_bits != 0 && response.client_max_window_bits > offer.client_max_window_bits) return false;
    }
    return true;
}

/// Whether `response` validly accepts one of the offers in `req`.
inline bool is_valid_deflate_response(const Request& req, const DeflateParams& response) {
    const auto offers = deflate_offers(req);
    return std::ranges::any_of(offers, [&](const DeflateOffer& o) { return is_valid_deflate_response(o, response); });
}

/// Negotiates for `req` under `options` and, when agreed, sets `Sec-WebSocket-Extensions` on `res`. Returns the
/// agreed parameters, nullopt (and `res` untouched) when there are none.
inline std::optional<DeflateParams> accept_deflate(const Request& req, Response& res, const DeflateOptions& options) {
    const auto params = negotiate_deflate(req, options);
    if (params) res.set_header("Sec-WebSocket-Extensions", deflate_response(*params));
    return params;
}

} // namespace swirl
