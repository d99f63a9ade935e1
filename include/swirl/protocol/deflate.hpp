#pragma once
/// The permessage-deflate payload transformation (RFC 7692 §7.2) over zlib raw deflate streams: a `Deflater` that
/// compresses whole messages and an `Inflater` that decompresses messages frame by frame with a hard limit on the
/// inflated size. Both keep one zlib stream for their lifetime (created on first use, reset between messages when
/// there is no context takeover, never per message) and write into caller-provided strings whose capacity is
/// reused, so a warm connection allocates nothing per message.
///
/// Only with zlib (`SWIRL_HAS_DEFLATE`, meson's `deflate` feature); without it this header declares nothing but
/// `deflate_tail`. Negotiation is swirl/protocol/permessage_deflate.hpp.
///
///     swirl::Inflater inflater = swirl::Inflater::for_server(params);
///     std::string message;                                  // reused: clear() keeps its capacity
///     switch (inflater.inflate(frame_payload, fin, message, settings.max_message_size)) {
///     case swirl::InflateResult::ok: break;                 // fin: `message` is whole
///     case swirl::InflateResult::too_big: /* close 1009 */ break;
///     case swirl::InflateResult::corrupt: /* close 1007 */ break;
///     }
///
/// Failures: RFC 7692 names no close code. An inflated message over the limit is 1009 (message too big) everywhere
/// (ws, websockets, this server's uncompressed limit). Data that is not valid DEFLATE is 1007 here, as in Node's
/// ws: the frames are well formed, the payload is not what its (compressed) type says; Python's websockets sends
/// 1002 and uWebSockets drops the connection without a close frame. `close_code_for` gives these.

#include <swirl/protocol/close_code.hpp>
#include <swirl/protocol/permessage_deflate.hpp>

#include <array>
#include <cstdint>

#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#endif

namespace swirl {

/// The empty stored block that ends every flushed message: stripped after compressing, appended before
/// decompressing (RFC 7692 §7.2.1, §7.2.2).
inline constexpr std::array<std::uint8_t, 4> deflate_tail{0x00, 0x00, 0xFF, 0xFF};

#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE

enum class InflateResult {
    ok,       ///< all input consumed; with `fin`, the message is complete
    too_big,  ///< the message inflates to more than the limit; output stopped at the limit
    corrupt,  ///< not a valid DEFLATE stream (or ends inside a block); see `Inflater::error_reason()`
};

/// The close code to fail the connection with: 1009 for `too_big`, 1007 for `corrupt` (see the header comment).
constexpr std::uint16_t close_code_for(InflateResult r) noexcept {
    switch (r) {
    case InflateResult::ok: return close_code::normal;
    case InflateResult::too_big: return close_code::message_too_big;
    case InflateResult::corrupt: return close_code::invalid_payload;
    }
    return close_code::protocol_error;
}

namespace detail {

// zlib allocates through operator new, so that a replaced global operator new (tests, an application's allocator)
// sees the codec's memory like any other.
inline voidpf zlib_alloc(voidpf, uInt items, uInt size) noexcept {
    return ::operator new(static_cast<std::size_t>(items) * size, std::nothrow);
}
inline void zlib_free(voidpf, voidpf address) noexcept { ::operator delete(address); }

/// zlib's stream on the heap: zlib's state points back at it, so it must not move; the codec objects can.
template <int (*End)(z_streamp)>
struct ZStreamDeleter {
    void operator()(z_stream* s) const noexcept {
        End(s);
        delete s;
    }
};

inline std::unique_ptr<z_stream> make_z_stream() {
    auto s = std::make_unique<z_stream>();
    s->zalloc = zlib_alloc;
    s->zfree = zlib_free;
    s->opaque = nullptr;
    return s;
}

[[noreturn]] inline void throw_zlib_init_error(int rc, const char* what) {
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    throw std::runtime_error(std::string(what) + " failed (zlib " + zlibVersion() + ")");
}

inline void check_window_bits(int bits) {
    if (bits < 8 || bits > 15) throw std::invalid_argument("deflate window bits must be 8..15");
}

/// Reserves room for `capacity` bytes without the doubling a library may apply (libstdc++ rounds a growth below 2x up
/// to 2x): a limit on the inflated size is then a limit on the memory too.
inline void reserve_exactly(std::string& s, std::size_t capacity) {
    if (capacity <= s.capacity()) return;
    if (capacity >= 2 * s.capacity()) {
        s.reserve(capacity);
        return;
    }
    std::string bigger;
    bigger.reserve(capacity);
    bigger.append(s);
    s.swap(bigger);
}

inline constexpr std::size_t max_zlib_chunk = UINT_MAX;

} // namespace detail

/// Decompresses the messages of one direction of a connection (RFC 7692 §7.2.2). Feed each frame's payload as it
/// arrives; the tail is appended after the last one. Messages are bounded: `max_size` caps the inflated size while
/// inflating, so a small message that would expand to gigabytes stops at the limit with `too_big`, having written
/// (and allocated) no more than that.
///
/// Lenient where the RFC allows a sender to be unusual: a DEFLATE block with BFINAL set ends the zlib stream and
/// whatever follows in the message starts a new one (RFC 7692 §7.2.3.4, a fresh window: the sender reset too); a
/// message that ends right after such a block needs no tail; an empty payload is an empty message. Strict
/// elsewhere: a message whose data (tail included) ends inside a DEFLATE block, or not on a byte boundary, is
/// `corrupt`.
///
/// The window: the inflater keeps 2^window_bits bytes of history, which bounds its memory whatever the peer sends.
/// zlib checks a distance against that history only when it reaches before the output of the current call, so a
/// peer that breaks the agreed window is caught when its distance reaches past both (always with byte-sized
/// output, sometimes with larger); within that, its reference is to bytes already inflated and is honoured.
///
/// After `too_big` or `corrupt` the message is abandoned and the inflater reset (the connection should be failed).
/// Movable, not copyable; the zlib stream (about 7 KiB plus a window of 2^window_bits bytes, allocated on the first
/// byte of output) is created on first use.
class Inflater {
public:
    /// `window_bits` 8..15 (the peer's agreed max window); `no_context_takeover` resets the stream after each message.
    /// Throws std::invalid_argument for other window sizes.
    explicit Inflater(int window_bits = 15, bool no_context_takeover = false)
        : window_bits_(window_bits), no_context_takeover_(no_context_takeover) {
        detail::check_window_bits(window_bits);
    }

    /// The server side of `params`: inflates what the client compressed.
    static Inflater for_server(const DeflateParams& params) {
        return Inflater(params.client_window_bits(), params.client_no_context_takeover);
    }
    /// The client side of `params`: inflates what the server compressed.
    static Inflater for_client(const DeflateParams& params) {
        return Inflater(params.server_window_bits(), params.server_no_context_takeover);
    }

    /// Inflates `input` (the next piece of a compressed message's payload) and appends the output to `out`. With `fin`
    /// the message ends here: the tail is appended and the message must end on a DEFLATE block boundary. The
    /// message's inflated size is capped at `max_size` bytes (pass the same for every piece): past it, `too_big` with
    /// exactly `max_size` bytes appended in all. Throws std::bad_alloc when out of memory (the inflater is then reset).
    InflateResult inflate(std::string_view input, bool fin, std::string& out, std::size_t max_size) {
        if (!stream_) init();
        if (!in_message_) {
            in_message_ = true;
            message_size_ = 0;
            any_input_ = false;
            ended_ = false;
        }
        try {
            if (!input.empty()) any_input_ = true;
            if (const auto r = run(reinterpret_cast<const Bytef*>(input.data()), input.size(), out, max_size); r != InflateResult::ok)
                return fail(r);
            if (!fin) return InflateResult::ok;
            // A stream that just ended (BFINAL) needs no tail; neither does an empty payload.
            if (any_input_ && !ended_) {
                if (const auto r = run(deflate_tail.data(), deflate_tail.size(), out, max_size); r != InflateResult::ok) return fail(r);
                // The message must end between two blocks and byte-aligned, or where a stream ended.
                if (!ended_ && !at_boundary_) {
                    reason_ = "compressed message ends inside a DEFLATE block";
                    return fail(InflateResult::corrupt);
                }
            }
        } catch (...) {
            reset();
            throw;
        }
        in_message_ = false;
        if (no_context_takeover_) inflateReset(stream_.get());
        return InflateResult::ok;
    }

    /// Span overload, for frame payloads held as bytes.
    InflateResult inflate(std::span<const std::uint8_t> input, bool fin, std::string& out, std::size_t max_size) {
        return inflate(std::string_view(reinterpret_cast<const char*>(input.data()), input.size()), fin, out, max_size);
    }

    /// Abandons the current message and forgets the window: the next message starts a fresh stream.
    void reset() noexcept {
        in_message_ = false;
        if (stream_) inflateReset(stream_.get());
    }

    /// Why the last `corrupt` (or `too_big`) result happened.
    std::string_view error_reason() const noexcept { return reason_; }
    /// Inflated bytes of the current (or last) message so far.
    std::size_t message_size() const noexcept { return message_size_; }
    /// True between the first piece of a message and its `fin`.
    bool in_message() const noexcept { return in_message_; }
    int window_bits() const noexcept { return window_bits_; }
    bool no_context_takeover() const noexcept { return no_context_takeover_; }

private:
    using Stream = std::unique_ptr<z_stream, detail::ZStreamDeleter<inflateEnd>>;

    void init() {
        auto s = detail::make_z_stream();
        const int rc = inflateInit2(s.get(), -window_bits_);
        if (rc != Z_OK) detail::throw_zlib_init_error(rc, "inflateInit2");
        stream_.reset(s.release());
    }

    InflateResult fail(InflateResult r) noexcept {
        if (r == InflateResult::too_big) reason_ = "inflated message exceeds the size limit";
        reset();
        return r;
    }

    /// Runs zlib over `size` bytes, growing `out` by at most what the limit leaves. Stops early on an error or when
    /// output would pass the limit.
    InflateResult run(const Bytef* in, std::size_t size, std::string& out, std::size_t max_size) {
        z_stream& z = *stream_;
        z.avail_in = 0;  // never what an abandoned message left
        std::size_t window = std::max<std::size_t>(1024, 4 * std::min<std::size_t>(size, std::size_t{1} << 20));
        while (true) {
            if (z.avail_in == 0 && size != 0) {  // zlib takes at most 4 GiB at a time
                const auto take = std::min(size, detail::max_zlib_chunk);
                z.next_in = const_cast<Bytef*>(in);
                z.avail_in = static_cast<uInt>(take);
                in += take;
                size -= take;
            }
            const std::size_t budget = max_size > message_size_ ? max_size - message_size_ : 0;
            const std::size_t before_in = z.avail_in;
            std::size_t produced = 0;
            int rc;
            if (budget == 0) {
                // At the limit: one more byte of output, whatever the input holds, means too big.
                Bytef probe;
                z.next_out = &probe;
                z.avail_out = 1;
                rc = ::inflate(&z, Z_SYNC_FLUSH);
                if (z.avail_out == 0) return InflateResult::too_big;
            } else {
                std::size_t want = std::min({window, budget, detail::max_zlib_chunk});
                const std::size_t old = out.size();
                // Spare capacity first (a warm buffer then never grows for nothing); when there is none, grow
                // geometrically, but never past the limit.
                if (out.capacity() > old) want = std::min(want, out.capacity() - old);
                else detail::reserve_exactly(out, old + std::min(budget, std::max(want, out.capacity())));
                out.resize(old + want);
                z.next_out = reinterpret_cast<Bytef*>(out.data() + old);
                z.avail_out = static_cast<uInt>(want);
                rc = ::inflate(&z, Z_SYNC_FLUSH);
                produced = want - z.avail_out;
                out.resize(old + produced);
                message_size_ += produced;
                if (z.avail_out == 0) window = std::min(2 * window, std::size_t{1} << 26);
            }
            const bool consumed = z.avail_in != before_in;
            switch (rc) {
            case Z_OK:
            case Z_BUF_ERROR:  // no progress possible: not an error in itself
                if (consumed) ended_ = false;
                // zlib's data_type is 128 plus the unused bits of the last byte when it stopped between two blocks
                // (zlib.h, on Z_BLOCK). Read only after progress: a call that does nothing changes it.
                if (consumed || produced != 0) at_boundary_ = z.data_type == 128;
                break;
            case Z_STREAM_END:
                // A final block: the next bytes (if any) start a new stream, as the sender's reset compressor would.
                ended_ = true;
                inflateReset(&z);
                break;
            case Z_MEM_ERROR: throw std::bad_alloc();
            case Z_NEED_DICT:
            case Z_DATA_ERROR:
            default:
                reason_ = z.msg != nullptr ? z.msg : "invalid compressed data";
                return InflateResult::corrupt;
            }
            if (rc == Z_STREAM_END || (budget != 0 && z.avail_out == 0)) continue;  // more may be pending
            if (z.avail_in == 0 && size == 0) return InflateResult::ok;  // all taken, and room was left over
            if (!consumed && produced == 0) {  // cannot happen with room to write into; never spin
                reason_ = "inflate made no progress";
                return InflateResult::corrupt;
            }
        }
    }

    int window_bits_;
    bool no_context_takeover_;
    bool in_message_ = false;
    bool any_input_ = false;
    bool ended_ = false;  ///< the last bytes fed ended a stream (BFINAL) and none have been consumed since
    bool at_boundary_ = false;  ///< zlib last stopped between two blocks, byte-aligned
    std::size_t message_size_ = 0;
    Stream stream_;
    std::string_view reason_;
};

/// Compresses the messages of one direction of a connection (RFC 7692 §7.2.1): each whole message is deflated,
/// flushed with Z_SYNC_FLUSH, and its trailing `00 00 ff ff` removed.
///
/// Window bits 8..15; 8 runs zlib with 9, which reaches at most 250 bytes back (zlib keeps distances below the window
/// size minus 262), so the output decodes with the 256-byte window promised. Memory once used: about
/// 2^(window_bits + 2) + 2^(mem_level + 9) bytes (256 KiB at 15 and 8) plus a few KiB.
///
/// Shared compression: with `no_context_takeover` every message is compressed from a fresh stream, so its bytes
/// depend on the message (and the settings) only, and can be framed once and sent to every connection whose
/// agreed window `fits`. A connection that keeps its own context-takeover compressor can take them too, provided
/// its compressor is `reset()` before its next message (its back references would otherwise point into bytes the
/// client's window no longer holds where the compressor thinks).
class Deflater {
public:
    /// Throws std::invalid_argument for window bits outside 8..15, a level outside -1..9 or a mem level outside 1..9.
    explicit Deflater(int window_bits = 15, bool no_context_takeover = false, int level = Z_DEFAULT_COMPRESSION, int mem_level = 8)
        : window_bits_(window_bits), no_context_takeover_(no_context_takeover), level_(level), mem_level_(mem_level) {
        detail::check_window_bits(window_bits);
        if (level < -1 || level > 9) throw std::invalid_argument("deflate level must be -1..9");
        if (mem_level < 1 || mem_level > 9) throw std::invalid_argument("deflate mem level must be 1..9");
    }

    /// The server side of `params`, with the level and memory of `options`.
    static Deflater for_server(const DeflateParams& params, const DeflateOptions& options = {}) {
        return Deflater(params.server_window_bits(), params.server_no_context_takeover, options.level, options.mem_level);
    }
    /// The client side of `params`.
    static Deflater for_client(const DeflateParams& params, const DeflateOptions& options = {}) {
        return Deflater(params.client_window_bits(), params.client_no_context_takeover, options.level, options.mem_level);
    }

    /// Compresses `message` and appends its payload (no tail) to `out`; returns the number of bytes appended.
    /// An empty message gives one byte. Throws std::bad_alloc when out of memory (the deflater is then reset).
    std::size_t compress(std::string_view message, std::string& out) {
        // zlib skips a second sync flush with no input between, so an empty message is written here: an empty
        // stored block's header, its length fields being the tail (also what zlib gives on a fresh stream).
        if (message.empty()) {
            out.push_back('\0');
            return 1;
        }
        if (!stream_) init();
        z_stream& z = *stream_;
        z.avail_in = 0;  // never what an abandoned message left
        const std::size_t start = out.size();
        try {
            // deflateBound covers Z_FINISH; a sync flush adds its empty stored block, and zlib wants more than six
            // bytes free when flushing or it may repeat the marker.
            std::size_t room = deflateBound(&z, static_cast<uLong>(std::min(message.size(), detail::max_zlib_chunk))) + 64;
            std::size_t used = start;
            auto in = reinterpret_cast<const Bytef*>(message.data());
            std::size_t left = message.size();
            while (true) {
                if (z.avail_in == 0 && left != 0) {
                    const auto take = std::min(left, detail::max_zlib_chunk);
                    z.next_in = const_cast<Bytef*>(in);
                    z.avail_in = static_cast<uInt>(take);
                    in += take;
                    left -= take;
                }
                const std::size_t want = std::min(room, detail::max_zlib_chunk);
                out.resize(used + want);
                z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
                z.avail_out = static_cast<uInt>(want);
                const int rc = ::deflate(&z, left == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH);
                used += want - z.avail_out;
                if (rc == Z_MEM_ERROR) throw std::bad_alloc();
                if (rc != Z_OK && rc != Z_BUF_ERROR) throw std::logic_error("deflate failed");
                if (left == 0 && z.avail_in == 0 && z.avail_out > 6) break;
                if (z.avail_out <= 6) room = std::max<std::size_t>(room, 1024) * 2;
            }
            out.resize(used);
        } catch (...) {
            out.resize(start);
            reset();
            throw;
        }
        // Z_SYNC_FLUSH ends with an empty stored block; RFC 7692 §7.2.1 drops its last four bytes.
        const std::size_t n = out.size() - start;
        if (n < 5 || std::memcmp(out.data() + out.size() - 4, deflate_tail.data(), 4) != 0) {
            out.resize(start);
            reset();
            throw std::logic_error("deflate did not end with a sync flush marker");
        }
        out.resize(out.size() - 4);
        if (no_context_takeover_) deflateReset(&z);
        return n - 4;
    }

    /// Forgets the history: the next message is compressed from a fresh stream.
    void reset() noexcept {
        if (stream_) deflateReset(stream_.get());
    }

    /// Whether bytes from this compressor (with `no_context_takeover`) decode on a connection that agreed `params`:
    /// its server window is at least this one (8 and 9 both fit 8: see the class comment).
    bool fits(const DeflateParams& params) const noexcept {
        return no_context_takeover_ && std::max(window_bits_, 9) <= std::max(params.server_window_bits(), 9);
    }

    int window_bits() const noexcept { return window_bits_; }
    bool no_context_takeover() const noexcept { return no_context_takeover_; }

private:
    using Stream = std::unique_ptr<z_stream, detail::ZStreamDeleter<deflateEnd>>;

    void init() {
        auto s = detail::make_z_stream();
        // zlib refuses a raw 256-byte window; 9 stays within 256 bytes of distance (see the class comment).
        const int rc = deflateInit2(s.get(), level_, Z_DEFLATED, -std::max(window_bits_, 9), mem_level_, Z_DEFAULT_STRATEGY);
        if (rc != Z_OK) detail::throw_zlib_init_error(rc, "deflateInit2");
        stream_.reset(s.release());
    }

    int window_bits_;
    bool no_context_takeover_;
    int level_;
    int mem_level_;
    Stream stream_;
};

#endif // SWIRL_HAS_DEFLATE

} // namespace swirl
