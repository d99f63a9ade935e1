#pragma once
/// Message buffers that an event loop's connections are not using, kept for the next message received on that loop.

#include <cstddef>
#include <string>
#include <vector>

namespace swirl::detail {

/// One per event loop, used on its thread only. A connection lends its message buffer here whenever it has handled
/// its input, and its output buffer and the payloads it wrote once written: an idle connection holds no large
/// buffer, and the next message received or sent on the loop lands in the buffer used last, still in cache.
class BufferPool {
public:
    static constexpr std::size_t max_buffers = 64;
    static constexpr std::size_t max_bytes = 4u << 20;  ///< capacity of all kept buffers together
    /// Smaller buffers cost less to keep with their connection than to pass through the pool, and stay in cache; an
    /// idle connection holds less than this in its message buffer and in each output queue.
    static constexpr std::size_t min_capacity = 1024;

    BufferPool() { buffers_.reserve(max_buffers); }

    /// True when a buffer of `capacity` bytes would be kept: at least `min_capacity`, and within the limits.
    bool accepts(std::size_t capacity) const noexcept {
        return capacity >= min_capacity && buffers_.size() < max_buffers && bytes_ + capacity <= max_bytes;
    }

    /// Keeps `buffer` (contents and all: whoever takes it overwrites them) if `accepts` its capacity; frees it otherwise.
    void give(std::string&& buffer) {
        const std::size_t capacity = buffer.capacity();
        if (!accepts(capacity)) return;
        bytes_ += capacity;
        buffers_.push_back(std::move(buffer));
    }

    /// The capacity of the buffer `take()` returns next; 0 when there is none.
    std::size_t next_capacity() const noexcept { return buffers_.empty() ? 0 : buffers_.back().capacity(); }

    /// The buffer given last, or an empty string.
    std::string take() noexcept {
        if (buffers_.empty()) return {};
        std::string buffer = std::move(buffers_.back());
        buffers_.pop_back();
        bytes_ -= buffer.capacity();
        return buffer;
    }

    std::size_t size() const noexcept { return buffers_.size(); }
    std::size_t bytes() const noexcept { return bytes_; }

private:
    std::vector<std::string> buffers_;
    std::size_t bytes_ = 0;
};

} // namespace swirl::detail
