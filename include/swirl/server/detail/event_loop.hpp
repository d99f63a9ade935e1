#pragma once
/// One event loop of the server and what belongs to it: its connections (a shard of the registry), the topics its
/// connections follow, its shared buffers and its counters. A connection lives on one loop for its whole life.
///
/// Threads: the registry shard and the topic index change under their mutexes. The topic index changes only on
/// the loop's own thread, which therefore reads it without the lock (to deliver publishes); other threads read
/// it under the lock. Publishing to a loop from another thread hands the delivery to that loop: each loop queues
/// frames to its own connections, and no lock is held while it does.

#include <swirl/server/detail/connection_table.hpp>
#include <swirl/server/detail/loop_buffers.hpp>
#include <swirl/server/detail/timing_wheel.hpp>
#include <swirl/server/detail/topic_index.hpp>
#include <swirl/server/stats.hpp>

#include <swirl/detail/asio.hpp>

#include <atomic>
#include <cstddef>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace swirl {
template <class UserData>
class Connection;
}

namespace swirl::detail {

/// The process-wide counter connection ids are taken from (`EventLoop::next_id`).
inline std::atomic<std::uint64_t> next_connection_number{1};

template <class UserData>
struct EventLoop {
    using Connection = swirl::Connection<UserData>;

    using clock = std::chrono::steady_clock;
    using Deadlines = TimingWheel<Connection>;

    /// `read_size`: bytes one read takes (the shared read buffer); `tick`: the resolution of the connections'
    /// deadlines; `on_deadline` acts on a connection whose deadline came.
    /// `socket_locks`: Asio's per-socket locks (`Settings::socket_locks`).
    EventLoop(std::size_t index, std::size_t count, std::size_t read_size, clock::duration tick,
              std::function<void(Connection&)> on_deadline, bool socket_locks = false)
        : index(index), count(count), buffers(read_size), deadlines(tick), on_deadline(std::move(on_deadline)),
          context(socket_locks ? 1 : ASIO_CONCURRENCY_HINT_UNSAFE_IO) {}  // 1: one thread, every lock

    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;
    /// A connection still parked when the loop goes (its server stopped with connections open) holds itself through
    /// its socket (server/detail/edge_socket.hpp, `ParkedReader`): it is let go, so that the registry frees it.
    ~EventLoop() {
        for (const auto& c : connections) c->drop_parked();
    }

    /// This loop's thread: (re)schedules `hook` for `due`, and wakes the loop's one deadline timer in time for it.
    /// O(1): while any deadline is pending the timer is armed by the earliest (each wake re-arms for the next), so
    /// only this hook's time can make it earlier.
    void watch(typename Deadlines::Hook& hook, clock::time_point due) {
        if (const auto at = deadlines.schedule(hook, due); at != clock::time_point::max()) arm(at);
    }

    /// This loop's thread: takes `hook` off the deadlines. The timer stays armed when the last one goes (its wake
    /// then finds nothing and sleeps): a connection that opens and closes would otherwise set and cancel it, two
    /// `timerfd_settime` calls and a cancelled wait each. Once `release_timer()` ran, the last one off stops it.
    void unwatch(typename Deadlines::Hook& hook) {
        deadlines.cancel(hook);
        if (released_ && deadlines.empty()) stop_timer();
    }

    /// This loop's thread, when the server stops: from now on the timer is stopped as soon as no deadline is
    /// pending, so that the loop holds no work and its `run()` can return.
    void release_timer() {
        released_ = true;
        if (deadlines.empty()) stop_timer();
    }

    bool running_in_this_thread() noexcept { return context.get_executor().running_in_this_thread(); }

    /// Ids are unique in the process, across servers and loops, and `id % count` is the loop: each id takes a
    /// block of `count` numbers from one process-wide counter, which holds exactly one number of this loop's
    /// residue. With one loop they run 1, 2, 3… (shared with the process's other servers).
    std::uint64_t next_id() noexcept {
        const std::uint64_t base = next_connection_number.fetch_add(count, std::memory_order_relaxed);
        return base + (index + count - base % count) % count;
    }

    const std::size_t index, count;
    // Declared before the context: coroutines the context destroys may still touch them.
    LoopBuffers buffers;  // this loop's thread only
    LoopCounters counters;
    mutable std::mutex topics_mutex;  // taken to change `topics` (on this loop) and to read it from other threads
    TopicIndex<Connection> topics;
    /// Subscription changes handed to this loop by other threads and not yet made: while any are, a publish from
    /// another thread is handed over even when no subscriber is there yet, so that it stays in order behind them.
    std::atomic<std::size_t> pending_changes{0};
    Deadlines deadlines;  // this loop's thread only: handshake, heartbeat, idle and close deadlines of its connections
    std::function<void(Connection&)> on_deadline;

    /// One thread runs it. Without Asio's per-socket locks unless `Settings::socket_locks`: the server registers and
    /// uses each socket of this loop on this loop's thread only (the scheduler and the reactor's registrations and
    /// timers keep their locks, for posts and timers from other threads).
    asio::io_context context;
    asio::executor_work_guard<asio::io_context::executor_type> guard{context.get_executor()};
    asio::steady_timer deadline_timer{context};

    // Declared after the context: connections left at destruction close their sockets before it goes.
    mutable std::mutex registry_mutex;
    ConnectionTable<Connection> connections;
    /// This loop's thread only: connections with output to flush at the loop's next turn (`Connection::post_flush`),
    /// and the list being flushed.
    std::vector<std::shared_ptr<Connection>> to_flush, flushing;

private:
    /// Makes the deadline timer wake by `at`: one wait pending at a time, moved earlier when needed. Each wake fires
    /// the deadlines that came and re-arms for the next non-empty tick, so an idle loop sleeps.
    void arm(clock::time_point at) {
        if (armed_ && at >= armed_at_) return;
        armed_ = true;
        armed_at_ = at;
        deadline_timer.expires_at(at);  // cancels a pending wait: its handler sees it was superseded
        deadline_timer.async_wait([this, generation = ++generation_](std::error_code ec) {
            if (generation != generation_) return;
            armed_ = false;
            if (ec) return;
            deadlines.advance(clock::now(), [this](Connection& c) { on_deadline(c); });
            if (const auto next = deadlines.next_time()) arm(*next);
        });
    }

    void stop_timer() {
        if (!armed_) return;
        armed_ = false;
        ++generation_;
        deadline_timer.cancel();
    }

    bool armed_ = false;
    bool released_ = false;
    clock::time_point armed_at_{};
    std::uint64_t generation_ = 0;
};

} // namespace swirl::detail
