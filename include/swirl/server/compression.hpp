#pragma once
/// permessage-deflate (RFC 7692) as a server deployment chooses it: `Settings::compression`. Off by default (the
/// extension is declined, as without it); a deployment opts in and picks how much memory compression may take.
///
///     swirl::Settings settings;
///     settings.compression.enabled = true;                       // shared compressor and decompressor per event loop
///     settings.compression = swirl::CompressOptions::dedicated(12, 5);  // or: 32 KiB of compressor per connection
///
/// Memory modes (as uWebSockets' SHARED_COMPRESSOR / DEDICATED_COMPRESSOR_xKB / DEDICATED_DECOMPRESSOR):
///  - compressor `shared`: one zlib compressor per thread (each event loop's, and each other thread that pushes),
///    reset after every message: the server answers `server_no_context_takeover`, every message is compressed on
///    its own, a connection holds no compressor, and a broadcast or publish is compressed once (per window size),
///    not once per recipient. Costs ratio on streams of similar small messages.
///  - compressor `dedicated`: one per connection with context takeover (each message may refer back into earlier
///    ones: the best ratio), made on the first compressed message and kept: about
///    2^(window_bits + 2) + 2^(mem_level + 9) bytes plus ~6 KiB per connection that has sent one.
///  - decompressor `shared`: one per thread, reset after every message: the server answers
///    `client_no_context_takeover`, so clients must compress every message on its own.
///  - decompressor `dedicated`: one per connection with the client's context (~7 KiB + 2^client_window_bits bytes,
///    made on the first compressed message received).
/// Whatever the mode, a connection whose negotiated parameters do not allow sharing (a handshake hook that accepted
/// context takeover, say) gets dedicated codecs.

#include <swirl/protocol/permessage_deflate.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace swirl {

/// How a server's compressor or decompressor is held (see the header comment).
enum class CodecMode {
    shared,     ///< one per thread, reset after every message (negotiates no context takeover for that direction)
    dedicated,  ///< one per connection, keeping the direction's context between messages
};

/// `Settings::compression`: whether and how the server compresses (permessage-deflate, RFC 7692).
struct CompressOptions {
    /// Negotiate permessage-deflate at all. Off (the default): the extension is declined and nothing changes.
    /// Needs a build with zlib (`swirl::deflate_available`); without it the extension is always declined.
    bool enabled = false;
    CodecMode compressor = CodecMode::shared;
    CodecMode decompressor = CodecMode::shared;
    /// The compressor's window, 8..15 (`server_max_window_bits`; a client's smaller limit wins). Memory per
    /// dedicated compressor: 2^(window_bits + 2) bytes of it.
    std::uint8_t window_bits = 15;
    /// zlib memLevel 1..9: 2^(mem_level + 9) bytes per compressor (dedicated ones count per connection).
    int mem_level = 8;
    /// zlib level 0..9 (0: stored, still framed as compressed; 1 fastest; 9 smallest).
    int level = 6;
    /// The window asked of clients that accept a limit (`client_max_window_bits`), 8..15: what a dedicated
    /// decompressor keeps per connection. A client that does not accept a limit compresses with 15.
    std::uint8_t client_window_bits = 15;
    /// Messages shorter than this go uncompressed (RSV1 clear) even where the extension is on: below about 1 KiB,
    /// deflate saves little and costs CPU (Node's ws uses 1024 too). 0: compress everything.
    std::size_t threshold = 1024;

    /// Dedicated compressor per connection with `window_bits` and `mem_level` (uWebSockets' DEDICATED_COMPRESSOR_xKB:
    /// 9/1 is 3 KB, 10/3 8 KB, 12/5 32 KB, 15/8 256 KB), shared decompressor.
    static CompressOptions dedicated(std::uint8_t window_bits, int mem_level) noexcept {
        CompressOptions o;
        o.enabled = true;
        o.compressor = CodecMode::dedicated;
        o.window_bits = window_bits;
        o.mem_level = mem_level;
        return o;
    }

    /// The compressor's memory once used, as zlib sizes it: 2^(window_bits + 2) + 2^(mem_level + 9) bytes (plus
    /// ~6 KiB of zlib state). Per connection when dedicated, per thread when shared.
    std::size_t compressor_memory() const noexcept {
        return (std::size_t{1} << (detail::clamp_window_bits(window_bits) + 2)) + (std::size_t{1} << (std::clamp(mem_level, 1, 9) + 9));
    }

    /// What the server answers offers with: no context takeover for each shared direction, the windows above.
    DeflateOptions negotiation() const noexcept {
        DeflateOptions d;
        d.enabled = enabled && deflate_available;
        d.server_max_window_bits = detail::clamp_window_bits(window_bits);
        d.client_max_window_bits = decompressor == CodecMode::dedicated ? detail::clamp_window_bits(client_window_bits) : 15;
        d.server_no_context_takeover = compressor == CodecMode::shared;
        d.client_no_context_takeover = decompressor == CodecMode::shared;
        d.level = level;
        d.mem_level = mem_level;
        d.threshold = threshold;
        return d;
    }
};

} // namespace swirl
