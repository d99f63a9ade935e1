#pragma once
/// The monotonic clock read at the kernel's tick instead of the TSC: what a connection notes each time bytes arrive.
///
/// On Linux `CLOCK_MONOTONIC_COARSE` is the time `CLOCK_MONOTONIC` (which `std::chrono::steady_clock` reads) had at
/// the last timer tick, read from the vDSO page without a TSC read: 7 ns a call against 29 here, once per read of
/// every connection. It lags `steady_clock` by up to one tick (`CoarseClock::tick()`, the clock's resolution,
/// 1-4 ms), never leads it, and its time points are `steady_clock`'s, so the two compare directly. Elsewhere it is
/// `steady_clock` itself, with a tick of zero.

#include <chrono>
#include <ctime>

namespace swirl::detail {

struct CoarseClock {
    using time_point = std::chrono::steady_clock::time_point;
    using duration = std::chrono::steady_clock::duration;

    static time_point now() noexcept {
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
        timespec ts;
        if (::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0) [[likely]] return time_point(to_duration(ts));
#endif
        return std::chrono::steady_clock::now();
    }

    /// How far `now()` may lag `steady_clock::now()`: the coarse clock's resolution (zero where it is steady_clock).
    static duration tick() noexcept { return tick_; }

private:
    static duration to_duration(const timespec& ts) noexcept {
        return std::chrono::duration_cast<duration>(std::chrono::seconds(ts.tv_sec) +
                                                    std::chrono::nanoseconds(ts.tv_nsec));
    }
    static duration resolution() noexcept {
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
        timespec ts;
        if (::clock_getres(CLOCK_MONOTONIC_COARSE, &ts) == 0) return to_duration(ts);
#endif
        return duration::zero();
    }
    static inline const duration tick_ = resolution();
};

} // namespace swirl::detail
