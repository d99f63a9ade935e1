#pragma once
/// Fixed-size memory blocks recycled on one event loop's thread: a connection's readiness wait without a coroutine
/// (one that is not a parked reader) and the read loop's yield go here (server/session.hpp). Asio's own per-thread
/// cache hands out whatever larger block it holds (one left by a handshake costs a parked connection ~250 bytes
/// more); here each wait takes a block of its own size, and a connection that parks and wakes again per message
/// takes the block the last one gave back, so it allocates nothing.

#include <cstddef>
#include <new>
#include <utility>

namespace swirl::detail {

class BlockPool {
public:
    static constexpr std::size_t block_size = 128;
    /// Free blocks kept (32 KiB); more go back to the heap.
    static constexpr std::size_t max_free = 256;

    BlockPool() = default;
    BlockPool(const BlockPool&) = delete;
    BlockPool& operator=(const BlockPool&) = delete;
    ~BlockPool() {
        while (free_) ::operator delete(std::exchange(free_, free_->next));
    }

    /// `n` bytes, aligned for any scalar type: a pooled block when they fit in one.
    void* allocate(std::size_t n) {
        if (n > block_size) return ::operator new(n);
        if (!free_) return ::operator new(block_size);
        --free_count_;
        return std::exchange(free_, free_->next);
    }

    /// Gives back what `allocate(n)` returned.
    void deallocate(void* p, std::size_t n) noexcept {
        if (n > block_size || free_count_ == max_free) return ::operator delete(p);
        ++free_count_;
        free_ = ::new (p) Node{free_};
    }

    std::size_t free_blocks() const noexcept { return free_count_; }

private:
    struct Node {
        Node* next;
    };
    Node* free_ = nullptr;
    std::size_t free_count_ = 0;
};

} // namespace swirl::detail
