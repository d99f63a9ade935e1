// Its own executable: the first test needs a process that has never had a second thread.
#include "doctest.hpp"

#include <swirl/server/detail/small_mutex.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

using swirl::detail::SmallLock;
using swirl::detail::SmallMutex;

namespace {

/// With `m` held by the caller, a thread that takes it must find it held and wait (it marks it contended and
/// sleeps), and `release()`, no longer alone, must wake it.
template <class Release>
void check_release_wakes_waiter(SmallMutex& m, Release release) {
    std::atomic<bool> took{false};
    std::thread other([&] {
        SmallLock inner(m);
        took.store(true);
    });
    CHECK_FALSE(swirl::detail::process_single_threaded());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(took.load());
    release();
    other.join();
    CHECK(took.load());
    REQUIRE(m.try_lock());
    m.unlock();
}

} // namespace

TEST_CASE("small mutex: alone, with plain stores; held as a second thread starts, which waits for it") {
#if defined(SWIRL_HAS_LIBC_SINGLE_THREADED)
    REQUIRE(swirl::detail::process_single_threaded());  // nothing in this executable started a thread yet
#else
    CHECK_FALSE(swirl::detail::process_single_threaded());  // no way to tell: always the locked instructions
#endif
    SmallMutex m;
    m.lock();
    CHECK_FALSE(m.try_lock());
    m.unlock();
    REQUIRE(m.try_lock());
    CHECK_FALSE(m.try_lock());
    m.unlock();

    // Taken alone, still held when a thread starts: its unlock must wake the thread.
    m.lock();
    check_release_wakes_waiter(m, [&] { m.unlock(); });
}

TEST_CASE("small mutex: excludes between threads") {
    SmallMutex m;
    long counter = 0;  // guarded by m
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 100000; ++i) {
                std::lock_guard lock(m);
                ++counter;
            }
        });
    for (auto& t : threads) t.join();
    CHECK(counter == 400000);
}

TEST_CASE("small lock: holds its mutex to the end of its scope, or until unlock(); its unlock wakes a waiter") {
    SmallMutex m;
    {
        SmallLock lock(m);
        CHECK_FALSE(m.try_lock());
    }
    REQUIRE(m.try_lock());  // given back at the end of the scope
    m.unlock();
    {
        SmallLock lock(m);
        lock.unlock();
        REQUIRE(m.try_lock());  // given back early, and not again at the end of the scope
    }
    CHECK_FALSE(m.try_lock());  // still held: the scope's end left the lock taken above alone
    m.unlock();

    // Held by a SmallLock: its unlock() must wake a waiting thread.
    SmallLock lock(m);
    check_release_wakes_waiter(m, [&] { lock.unlock(); });
}
