#include "doctest.hpp"

#include <swirl/server/detail/coarse_clock.hpp>

#include <chrono>

using namespace std::chrono_literals;
using swirl::detail::CoarseClock;

TEST_CASE("coarse clock: steady_clock's time points, never ahead of it, behind it by about a tick") {
#if defined(__linux__)
    CHECK(CoarseClock::tick() > 0ns);
    CHECK(CoarseClock::tick() <= 10ms);  // the kernel's HZ is 100 at the least
#endif
    auto last = CoarseClock::now();
    for (int i = 0; i < 1000; ++i) {
        const auto before = std::chrono::steady_clock::now();
        const auto coarse = CoarseClock::now();
        const auto after = std::chrono::steady_clock::now();
        CHECK(coarse <= after);
        // One tick behind, plus what a loaded machine (a sanitizer build, a busy VM) may delay the tick's update by.
        CHECK(coarse >= before - CoarseClock::tick() - 50ms);
        CHECK(coarse >= last);  // monotonic
        last = coarse;
    }
}

TEST_CASE("coarse clock: it moves") {
    const auto start = CoarseClock::now();
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (CoarseClock::now() == start && std::chrono::steady_clock::now() < deadline) {
    }
    CHECK(CoarseClock::now() > start);
}
