#pragma once
/// The buffers an event loop's connections share, used on that loop's thread only.

#include <swirl/protocol/message_reader.hpp>
#include <swirl/server/detail/block_pool.hpp>
#include <swirl/server/detail/buffer_pool.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace swirl::detail {

/// Message readers that an event loop's connections are not using. A connection lends its reader here whenever it
/// has handled its input and the reader is at rest (between frames) with no large buffer: an idle connection holds
/// no reader, which is ~300 bytes, and the next connection that receives takes the reader used last. Pooled readers
/// hold buffers below `BufferPool::min_capacity` only.
class ReaderPool {
public:
    static constexpr std::size_t max_readers = 128;

    /// A reader at rest with `limits` (every connection of a server reads with the same ones).
    std::unique_ptr<MessageReader> take(const ReaderLimits& limits) {
        if (readers_.empty()) return std::make_unique<MessageReader>(Role::server, limits);
        std::unique_ptr<MessageReader> reader = std::move(readers_.back());
        readers_.pop_back();
        return reader;
    }

    /// Keeps `reader` (at rest) for the next `take`, or frees it when the pool is full.
    void give(std::unique_ptr<MessageReader> reader) {
        if (readers_.size() < max_readers) readers_.push_back(std::move(reader));
    }

    std::size_t size() const noexcept { return readers_.size(); }

private:
    std::vector<std::unique_ptr<MessageReader>> readers_;
};

/// One per event loop: the bulk read buffer, `busy` while a connection still has unconsumed bytes in it (its
/// handler suspended; others then read into their own buffer), and the message and output buffers no connection is
/// using.
struct LoopBuffers {
    explicit LoopBuffers(std::size_t read_size) : bytes(read_size) {}

    std::vector<std::uint8_t> bytes;  // one read's worth (`Settings::read_size`)
    bool busy = false;
    BufferPool messages;
    OutputBufferPool output;
    ReaderPool readers;
    BlockPool waits;  // parked connections' readiness waits and the read loop's yields (server/session.hpp)
};

} // namespace swirl::detail
