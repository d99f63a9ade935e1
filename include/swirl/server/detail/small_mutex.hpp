#pragma once
/// A mutex of 4 bytes, for the short critical sections of a connection's write path: `std::mutex` is 40 bytes on
/// glibc, a tenth of what an idle connection may cost in all.

#include <atomic>
#include <cstdint>

#if defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define SWIRL_HAS_LIBC_SINGLE_THREADED 1
#endif
#endif

namespace swirl::detail {

/// True while the process has a single thread: glibc (2.32 and later) clears `__libc_single_threaded` before it
/// starts a second one, and never sets it again while another thread may run. Where the C library does not say,
/// false. libstdc++'s `shared_ptr` counts references without locked instructions on the same test.
inline bool process_single_threaded() noexcept {
#if defined(SWIRL_HAS_LIBC_SINGLE_THREADED)
    return __libc_single_threaded != 0;
#else
    return false;
#endif
}

/// 0: free, 1: locked, 2: locked with (possible) waiters, who sleep in `std::atomic::wait` (a futex on Linux).
/// Not recursive. Meets Lockable (`std::lock_guard`, `std::unique_lock`).
///
/// While the process has one thread (`process_single_threaded`: a server with one event loop and no thread of its
/// own), no other thread can hold or wait for the lock, so it is taken and given back with plain stores rather than
/// locked instructions: three lock/unlock pairs per echoed message, six locked instructions, in such a server. A
/// lock taken that way and still held when a second thread starts is an ordinary lock from then on (the new thread
/// sees it held: thread creation orders the store before it), and is given back with the locked exchange.
class SmallMutex {
public:
    SmallMutex() = default;
    SmallMutex(const SmallMutex&) = delete;
    SmallMutex& operator=(const SmallMutex&) = delete;

    void lock() noexcept {
        if (process_single_threaded()) {
            state_.store(1, std::memory_order_relaxed);
            return;
        }
        std::uint32_t expected = 0;
        if (state_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
        lock_contended();
    }

    bool try_lock() noexcept {
        if (process_single_threaded()) {
            if (state_.load(std::memory_order_relaxed) != 0) return false;
            state_.store(1, std::memory_order_relaxed);
            return true;
        }
        std::uint32_t expected = 0;
        return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed);
    }

    void unlock() noexcept {
        // Alone, there is nobody to wake: a waiter is a thread of its own.
        if (process_single_threaded()) {
            state_.store(0, std::memory_order_relaxed);
            return;
        }
        if (state_.exchange(0, std::memory_order_release) == 2) wake_one();
    }

private:
    /// Out of line: the common `unlock` (nobody waiting) stays a few instructions where it is called.
#if defined(__GNUC__)
    __attribute__((noinline))
#endif
    void wake_one() noexcept { state_.notify_one(); }

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

/// `std::unique_lock` for a `SmallMutex`, less what the write path does not use: it locks at once, and `unlock()`
/// may end it early, once. Without `std::unique_lock::unlock`'s check for a lock not held (which throws), the
/// compiler keeps the unlock inline where `std::unique_lock`'s stayed a call.
class SmallLock {
public:
    explicit SmallLock(SmallMutex& m) noexcept : m_(&m) { m.lock(); }
    SmallLock(const SmallLock&) = delete;
    SmallLock& operator=(const SmallLock&) = delete;
    ~SmallLock() {
        if (m_) m_->unlock();
    }

    void unlock() noexcept {
        m_->unlock();
        m_ = nullptr;
    }

private:
    SmallMutex* m_;
};

} // namespace swirl::detail
