#pragma once
/// A mutex of 4 bytes, for the short critical sections of a connection's write path: `std::mutex` is 40 bytes on
/// glibc, a tenth of what an idle connection may cost in all.

#include <atomic>
#include <cstdint>

namespace swirl::detail {

/// 0: free, 1: locked, 2: locked with (possible) waiters, who sleep in `std::atomic::wait` (a futex on Linux).
/// Not recursive. Meets Lockable (`std::lock_guard`, `std::unique_lock`).
class SmallMutex {
public:
    SmallMutex() = default;
    SmallMutex(const SmallMutex&) = delete;
    SmallMutex& operator=(const SmallMutex&) = delete;

    void lock() noexcept {
        std::uint32_t expected = 0;
        if (state_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
        lock_contended();
    }

    bool try_lock() noexcept {
        std::uint32_t expected = 0;
        return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed);
    }

    void unlock() noexcept {
        if (state_.exchange(0, std::memory_order_release) == 2) state_.notify_one();
    }

private:
    void lock_contended() noexcept {
        // A holder usually leaves within a few hundred cycles: spin a little before sleeping.
        for (int i = 0; i < 64; ++i) {
            std::uint32_t expected = 0;
            if (state_.load(std::memory_order_relaxed) == 0 &&
                state_.compare_exchange_weak(expected, 1, std::memory_order_acquire, std::memory_order_relaxed))
                return;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        // Mark the lock contended; whoever unlocks it wakes one sleeper, who takes it marked contended again.
        while (state_.exchange(2, std::memory_order_acquire) != 0) state_.wait(2, std::memory_order_relaxed);
    }

    std::atomic<std::uint32_t> state_{0};
};

} // namespace swirl::detail
