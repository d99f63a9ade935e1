#pragma once
/// Outgoing bytes of one connection: small frames are copied into one flat buffer so a burst of replies leaves
/// in a single write; pre-encoded frames (broadcast) are referenced, never copied.

#include <swirl/frame.hpp>

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace swirl::detail {

class OutputQueue {
public:
    /// Appends one frame: header then payload, unmasked (server to client).
    void append_frame(Opcode opcode, bool fin, std::string_view payload) {
        std::uint8_t header[max_frame_header_size];
        const std::size_t n = encode_unmasked_header(header, opcode, fin, payload.size());
        flat_.append(reinterpret_cast<const char*>(header), n);
        flat_.append(payload);
        size_ += n + payload.size();
    }

    /// Appends already-encoded bytes by reference (shared among many connections).
    void append_shared(std::shared_ptr<const std::string> bytes) {
        size_ += bytes->size();
        shared_.push_back({flat_.size(), std::move(bytes)});
    }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    /// Calls `f(data, size)` for each contiguous piece, in order.
    template <class F>
    void for_each_piece(F&& f) const {
        std::size_t from = 0;
        for (const auto& s : shared_) {
            if (s.flat_offset > from) f(flat_.data() + from, s.flat_offset - from);
            from = s.flat_offset;
            f(s.bytes->data(), s.bytes->size());
        }
        if (flat_.size() > from) f(flat_.data() + from, flat_.size() - from);
    }

    /// Empties the queue, keeping up to `keep_capacity` bytes of buffer for reuse.
    void clear(std::size_t keep_capacity = 64 * 1024) noexcept {
        if (flat_.capacity() > keep_capacity) std::string().swap(flat_);
        else flat_.clear();
        shared_.clear();
        size_ = 0;
    }

    void swap(OutputQueue& other) noexcept {
        flat_.swap(other.flat_);
        shared_.swap(other.shared_);
        std::swap(size_, other.size_);
    }

private:
    struct Shared {
        std::size_t flat_offset;  ///< where in the flat stream these bytes go
        std::shared_ptr<const std::string> bytes;
    };
    std::string flat_;
    std::vector<Shared> shared_;
    std::size_t size_ = 0;
};

} // namespace swirl::detail
