#pragma once
/// The buffers an event loop's connections share, used on that loop's thread only.

#include <swirl/server/detail/buffer_pool.hpp>

#include <cstdint>
#include <vector>

namespace swirl::detail {

/// One per event loop: the bulk read buffer, `busy` while a connection still has unconsumed bytes in it (its
/// handler suspended; others then read into their own buffer), and the message buffers no connection is using.
struct LoopBuffers {
    std::vector<std::uint8_t> bytes = std::vector<std::uint8_t>(64 * 1024);
    bool busy = false;
    BufferPool messages;
};

} // namespace swirl::detail
