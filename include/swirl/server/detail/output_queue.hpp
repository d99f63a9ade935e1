#pragma once
/// Outgoing bytes of one connection: small frames are copied into one flat buffer so a burst of replies leaves
/// in a single write; larger pre-encoded frames (broadcast) are referenced, and payloads given up by their sender
/// are held, never copied.

#include <swirl/server/detail/buffer_pool.hpp>
#include <swirl/server/detail/byte_buffer.hpp>
#include <swirl/protocol/frame.hpp>

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace swirl::detail {

class OutputQueue {
public:
    /// The flat buffer `clear` keeps by default: a burst's larger buffer is freed.
    static constexpr std::size_t default_kept_capacity = 64 * 1024;

    /// Appends one frame: header then payload, unmasked (server to client). `rsv_bits`: `rsv::rsv1` for a
    /// compressed message.
    void append_frame(Opcode opcode, bool fin, std::string_view payload, std::uint8_t rsv_bits = 0) {
        char* at = room(unmasked_header_size(payload.size()) + payload.size());
        const std::size_t n = encode_unmasked_header(reinterpret_cast<std::uint8_t*>(at), opcode, fin, payload.size(), rsv_bits);
        if (!payload.empty()) std::memcpy(at + n, payload.data(), payload.size());
        used_ += n + payload.size();
        size_ += n + payload.size();
    }

    /// `append_frame` of a final, uncompressed frame under 64 KiB: the header written in place, for a caller that
    /// inlines it (`Connection::queue_reply`). Not `encode_unmasked_header`, which handles masks, RSV bits and
    /// 8-byte lengths: with it a reply cost 21 instructions more (callgrind, 20 B echo at depth 16: 390 against 369).
    void append_short_frame(Opcode opcode, std::string_view payload) {
        const std::size_t n = payload.size();
        const std::size_t head = n < 126 ? 2 : 4;
        auto* at = reinterpret_cast<std::uint8_t*>(room(head + n));
        at[0] = static_cast<std::uint8_t>(0x80 | static_cast<std::uint8_t>(opcode));
        if (n < 126) {
            at[1] = static_cast<std::uint8_t>(n);
        } else {
            at[1] = 126;
            at[2] = static_cast<std::uint8_t>(n >> 8);
            at[3] = static_cast<std::uint8_t>(n);
        }
        std::memcpy(at + head, payload.data(), n);
        used_ += head + n;
        size_ += head + n;
    }

    /// Appends one frame whose payload the queue takes over instead of copying: a large payload its sender gives up.
    void append_owned(Opcode opcode, bool fin, std::string&& payload) {
        const std::size_t n = encode_unmasked_header(
            reinterpret_cast<std::uint8_t*>(room(unmasked_header_size(payload.size()))), opcode, fin, payload.size());
        used_ += n;
        size_ += n + payload.size();
        held_.emplace_back(used_, std::move(payload));
    }

    /// Shared encoded frames up to this size are better copied than held (`append_encoded`): a copy of a few hundred
    /// bytes costs less than the reference count's two atomic operations and a held entry, and the frame then leaves
    /// in the flat buffer's piece of the write instead of a piece of its own.
    static constexpr std::size_t copy_shared_up_to = 512;

    /// Appends already-encoded bytes by copying them.
    void append_encoded(std::string_view bytes) {
        if (!bytes.empty()) std::memcpy(room(bytes.size()), bytes.data(), bytes.size());
        used_ += bytes.size();
        size_ += bytes.size();
    }

    /// Appends already-encoded bytes by reference (shared among many connections).
    void append_shared(std::shared_ptr<const std::string> bytes) {
        size_ += bytes->size();
        held_.emplace_back(used_, std::move(bytes));
    }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    /// Bytes copied into the flat buffer (frames and headers), and payloads held outside it.
    std::size_t flat_size() const noexcept { return used_; }
    std::size_t held_count() const noexcept { return held_.size(); }
    /// The whole queue when it holds nothing outside its flat buffer (`held_count() == 0`): one piece to write.
    std::string_view flat_bytes() const noexcept { return {flat_.data(), used_}; }

    /// The flat buffer's capacity: what the queue holds for frames to come.
    std::size_t capacity() const noexcept { return flat_.capacity(); }
    /// An empty queue's flat buffer, handed over (to an event loop's pool while the connection is idle); the queue
    /// is left without one.
    ByteBuffer take_buffer() noexcept {
        used_ = 0;
        return std::move(flat_);
    }
    /// An empty queue takes `buffer` (from a pool; its contents are overwritten) for the frames to come.
    void adopt_buffer(ByteBuffer&& buffer) noexcept {
        flat_ = std::move(buffer);
        used_ = 0;
    }

    /// Calls `f(data, size)` for each contiguous piece, in order.
    template <class F>
    void for_each_piece(F&& f) const {
        std::size_t from = 0;
        for (const auto& h : held_) {
            if (h.flat_offset > from) f(flat_.data() + from, h.flat_offset - from);
            from = h.flat_offset;
            const std::string& bytes = h.shared ? *h.shared : h.owned;
            f(bytes.data(), bytes.size());
        }
        if (used_ > from) f(flat_.data() + from, used_ - from);
    }

    /// Empties the queue, keeping up to `keep_capacity` bytes of buffer for reuse. Payloads taken over by
    /// `append_owned` go to `recycle` (when given), for their buffers to receive later messages.
    void clear(std::size_t keep_capacity = default_kept_capacity, BufferPool* recycle = nullptr) {
        if (flat_.capacity() > keep_capacity) flat_ = ByteBuffer();
        used_ = 0;
        if (recycle)
            for (auto& h : held_)
                if (!h.shared) recycle->give(std::move(h.owned));
        held_.clear();
        size_ = 0;
    }

    void swap(OutputQueue& other) noexcept {
        flat_.swap(other.flat_);
        std::swap(used_, other.used_);
        held_.swap(other.held_);
        std::swap(size_, other.size_);
    }

private:
    /// Bytes kept outside the flat buffer: a shared encoded frame, or an owned payload (its header is flat).
    struct Held {
        Held(std::size_t offset, std::shared_ptr<const std::string> bytes) noexcept
            : flat_offset(offset), shared(std::move(bytes)) {}
        Held(std::size_t offset, std::string&& payload) noexcept : flat_offset(offset), owned(std::move(payload)) {}
        std::size_t flat_offset;  ///< where in the flat stream these bytes go
        std::shared_ptr<const std::string> shared;
        std::string owned;  ///< when `shared` is null
    };
    /// Room for `n` more bytes at `flat_.data() + used_`.
    char* room(std::size_t n) {
        if (flat_.capacity() - used_ < n) [[unlikely]] grow(n);
        return flat_.data() + used_;
    }
    /// Out of line, so that appending within the capacity needs no registers saved for the growth.
#if defined(__GNUC__)
    __attribute__((noinline))
#endif
    void grow(std::size_t n) { flat_.grow(used_ + n, used_); }

    ByteBuffer flat_;
    std::size_t used_ = 0;  ///< bytes of `flat_` queued
    std::vector<Held> held_;
    std::size_t size_ = 0;
};

} // namespace swirl::detail
