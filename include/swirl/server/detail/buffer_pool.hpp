#pragma once
/// Buffers that an event loop's connections are not using, kept for the next message received or sent on that loop.

#include <swirl/server/detail/byte_buffer.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace swirl::detail {

/// One of each kind per event loop, used on its thread only. A connection lends its message buffer here whenever it
/// has handled its input, and its output buffer and the payloads it wrote once written: an idle connection holds no
/// large buffer, and the next message received or sent on the loop lands in the buffer used last, still in cache.
/// `Buffer`: `std::string` (message buffers, whose payloads handlers may keep) or `ByteBuffer` (output buffers).
template <class Buffer, std::size_t MinCapacity>
class BasicBufferPool {
public:
    static constexpr std::size_t max_buffers = 64;
    static constexpr std::size_t max_bytes = 4u << 20;  ///< capacity of all kept buffers together
    /// Smaller buffers are not kept: they cost less to keep with their connection than to pass through the pool.
    static constexpr std::size_t min_capacity = MinCapacity;

    BasicBufferPool() { buffers_.reserve(max_buffers); }

    /// True when a buffer of `capacity` bytes would be kept: at least `min_capacity`, and within the limits.
    bool accepts(std::size_t capacity) const noexcept {
        return capacity >= min_capacity && buffers_.size() < max_buffers && bytes_ + capacity <= max_bytes;
    }

    /// Keeps `buffer` (contents and all: whoever takes it overwrites them) if `accepts` its capacity; frees it otherwise.
    void give(Buffer&& buffer) {
        const std::size_t capacity = buffer.capacity();
        if (!accepts(capacity)) return;
        bytes_ += capacity;
        buffers_.push_back(std::move(buffer));
    }

    /// The capacity of the buffer `take()` returns next; 0 when there is none.
    std::size_t next_capacity() const noexcept { return buffers_.empty() ? 0 : buffers_.back().capacity(); }

    /// The buffer given last, or an empty one.
    Buffer take() noexcept {
        if (buffers_.empty()) return {};
        Buffer buffer = std::move(buffers_.back());
        buffers_.pop_back();
        bytes_ -= buffer.capacity();
        return buffer;
    }

    std::size_t size() const noexcept { return buffers_.size(); }
    std::size_t bytes() const noexcept { return bytes_; }

private:
    std::vector<Buffer> buffers_;
    std::size_t bytes_ = 0;
};

/// Message buffers (the reader's, and payloads written from `send(std::string&&)`). Those below 1 KiB stay with their
/// connection's reader, which itself goes to the loop's reader pool when at rest (`ReaderPool`): both are then
/// reused from the loop's pools, still in cache.
using BufferPool = BasicBufferPool<std::string, 1024>;

/// Output queues' flat buffers. Any size is lent: at 100 connections each keeping its own, a 512-byte reply was
/// copied into a buffer not in the first-level cache (8 of its 9 lines missed there, simulated by callgrind).
using OutputBufferPool = BasicBufferPool<ByteBuffer, ByteBuffer::min_growth>;

} // namespace swirl::detail
