#include "doctest.hpp"

#include <swirl/server/detail/timing_wheel.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct Entry;
using Wheel = swirl::detail::TimingWheel<Entry>;
using clock_type = Wheel::clock;

struct Entry {
    int id = 0;
    Wheel::Hook hook{this};
};

std::vector<int> advance(Wheel& wheel, clock_type::time_point now) {
    std::vector<int> fired;
    wheel.advance(now, [&](Entry& e) { fired.push_back(e.id); });
    return fired;
}

} // namespace

TEST_CASE("timing wheel: a deadline fires at the end of its tick, never early, and once") {
    const auto t0 = clock_type::time_point() + 1000s;
    Wheel wheel(10ms, 8, t0);
    Entry a{1}, b{2}, c{3};
    CHECK(wheel.schedule(a.hook, t0 + 25ms) == t0 + 30ms);  // tick 3 (ends at 30 ms)
    CHECK(wheel.schedule(b.hook, t0 + 30ms) == t0 + 30ms);  // tick 3 too: exactly on a boundary
    CHECK(wheel.schedule(c.hook, t0 + 31ms) == t0 + 40ms);  // tick 4
    CHECK(wheel.size() == 3);
    CHECK(wheel.next_time() == t0 + 30ms);
    CHECK(advance(wheel, t0 + 29ms).empty());
    CHECK(advance(wheel, t0 + 30ms) == std::vector<int>{1, 2});
    CHECK_FALSE(a.hook.scheduled());
    CHECK(advance(wheel, t0 + 39ms).empty());
    CHECK(advance(wheel, t0 + 40ms) == std::vector<int>{3});
    CHECK(wheel.empty());
    CHECK_FALSE(wheel.next_time());
    CHECK(advance(wheel, t0 + 1s).empty());
}

TEST_CASE("timing wheel: rescheduling moves an entry; cancelling removes it; a past deadline fires next") {
    const auto t0 = clock_type::time_point() + 1000s;
    Wheel wheel(10ms, 8, t0);
    Entry a{1}, b{2};
    wheel.schedule(a.hook, t0 + 50ms);
    wheel.schedule(a.hook, t0 + 20ms);  // earlier
    wheel.schedule(b.hook, t0 + 20ms);
    wheel.cancel(b.hook);
    wheel.cancel(b.hook);  // harmless
    CHECK(wheel.size() == 1);
    CHECK(advance(wheel, t0 + 20ms) == std::vector<int>{1});
    CHECK(advance(wheel, t0 + 60ms).empty());  // not at the old deadline either
    CHECK(wheel.schedule(b.hook, t0) == t0 + 70ms);  // in the past: the next tick (60 ms were processed)
    CHECK(advance(wheel, t0 + 70ms) == std::vector<int>{2});
    CHECK(wheel.schedule(b.hook, clock_type::time_point::max()) == clock_type::time_point::max());  // never
}

TEST_CASE("timing wheel: deadlines beyond one revolution wait for their own tick") {
    const auto t0 = clock_type::time_point() + 1000s;
    Wheel wheel(10ms, 4, t0);  // one revolution: 40 ms
    Entry a{1}, b{2};
    wheel.schedule(a.hook, t0 + 130ms);  // 3 revolutions and a bit ahead
    wheel.schedule(b.hook, t0 + 10ms);
    CHECK(advance(wheel, t0 + 10ms) == std::vector<int>{2});
    for (auto t = 20ms; t < 130ms; t += 10ms) CHECK(advance(wheel, t0 + t).empty());
    CHECK(advance(wheel, t0 + 130ms) == std::vector<int>{1});
}

TEST_CASE("timing wheel: a long gap between advances fires everything due, in tick order") {
    const auto t0 = clock_type::time_point() + 1000s;
    Wheel wheel(10ms, 4, t0);
    Entry a{1}, b{2}, c{3};
    wheel.schedule(c.hook, t0 + 300ms);
    wheel.schedule(b.hook, t0 + 200ms);
    wheel.schedule(a.hook, t0 + 15ms);
    const auto fired = advance(wheel, t0 + 250ms);  // slept through several revolutions
    CHECK(fired.size() == 2);
    CHECK(wheel.size() == 1);
    CHECK(advance(wheel, t0 + 300ms) == std::vector<int>{3});
}

TEST_CASE("timing wheel: an entry fired may reschedule itself and others") {
    const auto t0 = clock_type::time_point() + 1000s;
    Wheel wheel(10ms, 8, t0);
    Entry a{1}, b{2};
    wheel.schedule(a.hook, t0 + 10ms);
    wheel.schedule(b.hook, t0 + 10ms);
    std::vector<int> fired;
    wheel.advance(t0 + 10ms, [&](Entry& e) {
        fired.push_back(e.id);
        if (e.id == 1) {
            wheel.schedule(e.hook, t0 + 5ms);  // in the past: the next tick, not this advance
            wheel.cancel(b.hook);              // b was due in this very slot: it does not fire
        }
    });
    CHECK(fired == std::vector<int>{1});
    CHECK(advance(wheel, t0 + 20ms) == std::vector<int>{1});
    CHECK(wheel.empty());
}

TEST_CASE("timing wheel: random schedules fire exactly when due, against a reference") {
    std::mt19937 rng(7);
    const auto t0 = clock_type::time_point() + 1000s;
    Wheel wheel(1ms, 16, t0);
    std::vector<std::unique_ptr<Entry>> entries;
    for (int i = 0; i < 200; ++i) {
        entries.push_back(std::make_unique<Entry>());
        entries.back()->id = i;
    }
    std::map<int, clock_type::time_point> due;  // the reference: what is scheduled, and for when
    auto now = t0;
    for (int step = 0; step < 5000; ++step) {
        Entry& e = *entries[std::uniform_int_distribution<std::size_t>(0, entries.size() - 1)(rng)];
        if (std::uniform_int_distribution<int>(0, 4)(rng) == 0) {
            wheel.cancel(e.hook);
            due.erase(e.id);
        } else {
            const auto at = now + std::chrono::microseconds(std::uniform_int_distribution<int>(0, 60000)(rng));
            wheel.schedule(e.hook, at);
            due[e.id] = at;
        }
        now += std::chrono::microseconds(std::uniform_int_distribution<int>(0, 3000)(rng));
        wheel.advance(now, [&](Entry& fired) {
            REQUIRE(due.count(fired.id));
            CHECK(due[fired.id] <= now);                    // never early
            CHECK(now - due[fired.id] < 4ms);  // a tick, plus the gap since the advance before
            due.erase(fired.id);
        });
        for (const auto& [id, at] : due) REQUIRE(at > now - 1ms);  // nothing due by a whole tick was left behind
        REQUIRE(wheel.size() == due.size());
    }
}
