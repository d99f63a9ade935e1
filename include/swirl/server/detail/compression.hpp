#pragma once
/// The codecs behind `Settings::compression`: a thread's shared compressors and decompressor, and one connection's
/// permessage-deflate state (its agreed parameters, and dedicated codecs where it has them). No Asio.
///
/// Streams are made on first use and then reused for every message (zlib's reset, never a new stream), and output
/// goes into caller-provided strings whose capacity is kept: a warm connection allocates nothing per message.

#include <swirl/protocol/deflate.hpp>
#include <swirl/protocol/frame.hpp>
#include <swirl/protocol/permessage_deflate.hpp>
#include <swirl/server/compression.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace swirl::detail {

#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE

/// The codecs one thread shares among the connections it serves: an event loop's thread for its connections, any
/// other thread for what it pushes. Compressors reset after every message (no context takeover), so bytes from
/// any thread's compressor of a window decode on every connection agreed on that window or a larger one.
class SharedCodecs {
public:
    /// The calling thread's codecs.
    static SharedCodecs& this_thread() {
        static thread_local SharedCodecs codecs;
        return codecs;
    }

    /// The compressor for `window_bits` (8..15) with `level` and `mem_level`; one per window, remade only when a
    /// server with other zlib settings asks for it.
    Deflater& deflater(int window_bits, int level, int mem_level) {
        Slot& slot = deflaters_[static_cast<std::size_t>(std::clamp(window_bits, 8, 15) - 8)];
        if (!slot.deflater || slot.level != level || slot.mem_level != mem_level) {
            slot.deflater.emplace(std::clamp(window_bits, 8, 15), true, level, mem_level);
            slot.level = level;
            slot.mem_level = mem_level;
        }
        return *slot.deflater;
    }

    /// The decompressor: a 32 KiB window inflates what any client sends, and no context takeover resets it after
    /// every message, so messages of different connections may follow each other.
    Inflater& inflater() {
        if (!inflater_) inflater_.emplace(15, true);
        return *inflater_;
    }

    /// A buffer for one compressed message at a time, before it is framed; its capacity is kept between messages
    /// (see `trim`).
    std::string& scratch() noexcept { return scratch_; }
    /// The buffer a received message is inflated into, before it is swapped with the message's own buffer.
    std::string& inflated() noexcept { return inflated_; }

    /// Frees the buffers a large message left bigger than `keep_capacity`.
    void trim(std::size_t keep_capacity) noexcept {
        if (scratch_.capacity() > keep_capacity) std::string().swap(scratch_);
        if (inflated_.capacity() > keep_capacity) std::string().swap(inflated_);
    }

private:
    struct Slot {
        std::optional<Deflater> deflater;
        int level = 0;
        int mem_level = 0;
    };
    std::array<Slot, 8> deflaters_{};
    std::optional<Inflater> inflater_;
    std::string scratch_;
    std::string inflated_;
};

/// One connection's permessage-deflate: the agreed parameters and, where the mode (or the parameters) call for
/// them, dedicated codecs. Used by one thread at a time (the connection's write lock for compressing; its event
/// loop for inflating).
class ConnectionDeflate {
public:
    /// `params` as answered in the handshake; `options` the server's. A direction gets a dedicated codec exactly when
    /// it keeps context between messages (a shared mode negotiates it away, a hook may have kept it); without
    /// context takeover a dedicated codec would be reset after every message, so the loop's shared one does the
    /// same work without the per-connection memory, whatever the mode.
    ConnectionDeflate(const DeflateParams& params, const CompressOptions& options)
        : params_(params), level_(options.level), mem_level_(options.mem_level), threshold_(options.threshold) {
        if (!params.server_no_context_takeover)
            deflater_.emplace(params.server_window_bits(), false, options.level, options.mem_level);
        if (!params.client_no_context_takeover) inflater_.emplace(params.client_window_bits(), false);
    }

    const DeflateParams& params() const noexcept { return params_; }
    int level() const noexcept { return level_; }
    int mem_level() const noexcept { return mem_level_; }
    bool dedicated_compressor() const noexcept { return deflater_.has_value(); }
    bool dedicated_decompressor() const noexcept { return inflater_.has_value(); }

    /// Whether a data message of `size` bytes (one the sender did not exempt) is sent compressed: it reaches the
    /// threshold.
    bool compresses(std::size_t size) const noexcept { return size >= threshold_; }

    /// Compresses `message` (RFC 7692 §7.2.1: the tail removed) and appends it to `out`: with the dedicated
    /// compressor, or the calling thread's shared one for this connection's window.
    void compress(std::string_view message, std::string& out) {
        if (deflater_) deflater_->compress(message, out);
        else SharedCodecs::this_thread().deflater(params_.server_window_bits(), level_, mem_level_).compress(message, out);
    }

    /// The shared compressor the connection's own messages would use: its bytes for a message can be sent to this
    /// connection as they are (a broadcast's, say), provided `took_shared_bytes()` is called after queueing them.
    int window_bits() const noexcept { return params_.server_window_bits(); }

    /// Bytes from a shared compressor were queued in place of this connection's own: a dedicated compressor forgets
    /// its context, since the client's window now holds other bytes than the compressor thinks.
    void took_shared_bytes() noexcept {
        if (deflater_) deflater_->reset();
    }

    /// Inflates one whole compressed message into `out` (cleared first), bounded by `max_size` inflated bytes.
    InflateResult inflate(std::string_view message, std::string& out, std::size_t max_size) {
        out.clear();
        Inflater& inflater = inflater_ ? *inflater_ : SharedCodecs::this_thread().inflater();
        const InflateResult r = inflater.inflate(message, true, out, max_size);
        if (r != InflateResult::ok) reason_ = inflater.error_reason();
        return r;
    }

    /// Why the last `inflate` failed.
    std::string_view error_reason() const noexcept { return reason_; }

private:
    DeflateParams params_;
    int level_;
    int mem_level_;
    std::size_t threshold_;
    std::optional<Deflater> deflater_;
    std::optional<Inflater> inflater_;
    std::string_view reason_;
};

#else

/// Without zlib no connection negotiates the extension: a connection's compression state is always null, and this
/// type only completes its declaration.
class ConnectionDeflate {
public:
    ConnectionDeflate() = delete;
};

#endif // SWIRL_HAS_DEFLATE

/// A broadcast or published message, framed once and shared by every recipient's output queue: uncompressed, and
/// compressed once per window size among the recipients that compress it (by the shared compressor of the thread
/// that first needs it; its bytes are the same on every thread), never once per recipient. Thread-safe.
class SharedMessage {
public:
    /// Frames `data` as one unfragmented `opcode` message.
    static std::shared_ptr<SharedMessage> make(std::string_view data, Opcode opcode) {
        return std::make_shared<SharedMessage>(Private{}, data, opcode);
    }

    struct Private {};
    SharedMessage(Private, std::string_view data, Opcode opcode) : opcode_(opcode), plain_(pack(data, opcode)) {
        header_size_ = plain_.size() - data.size();
    }

    Opcode opcode() const noexcept { return opcode_; }
    std::string_view payload() const noexcept { return std::string_view(plain_).substr(header_size_); }

    /// The frame for a recipient with `deflate` (null: no extension), alive as long as `m`: compressed for the
    /// recipient's window when it would compress a message of this size, else the plain frame. `compressed` tells
    /// which; a recipient with a dedicated compressor must then `took_shared_bytes()`.
    static const std::string& frame_bytes(SharedMessage& m, [[maybe_unused]] ConnectionDeflate* deflate, bool& compressed) {
        compressed = false;
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
        compressed = deflate != nullptr && !is_control(m.opcode_) && deflate->compresses(m.payload().size());
        if (!compressed) return m.plain_;
        const auto slot = static_cast<std::size_t>(std::clamp(deflate->window_bits(), 9, 15) - 9);  // 8 compresses as 9
        std::call_once(m.once_[slot], [&] {
            std::string payload;
            SharedCodecs::this_thread()
                .deflater(deflate->window_bits(), deflate->level(), deflate->mem_level())
                .compress(m.payload(), payload);
            m.compressed_[slot] = pack(payload, m.opcode_, true, std::nullopt, rsv::rsv1);
        });
        return m.compressed_[slot];
#else
        return m.plain_;
#endif
    }

    /// `frame_bytes`, sharing ownership with `self`.
    static std::shared_ptr<const std::string> frame_for(const std::shared_ptr<SharedMessage>& self, ConnectionDeflate* deflate,
                                                        bool& compressed) {
        return std::shared_ptr<const std::string>(self, &frame_bytes(*self, deflate, compressed));
    }

private:
    Opcode opcode_;
    std::string plain_;
    std::size_t header_size_ = 0;
    std::array<std::once_flag, 7> once_;
    std::array<std::string, 7> compressed_;
};

} // namespace swirl::detail
