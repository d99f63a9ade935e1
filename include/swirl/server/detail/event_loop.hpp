#pragma once
/// One event loop of the server and what belongs to it: its connections (a shard of the registry), the topics its
/// connections follow, its shared buffers and its counters. A connection lives on one loop for its whole life.
///
/// Threads: the registry shard and the topic index change under their mutexes. The topic index changes only on
/// the loop's own thread, which therefore reads it without the lock (to deliver publishes); other threads read
/// it under the lock. Publishing to a loop from another thread hands the delivery to that loop: each loop queues
/// frames to its own connections, and no lock is held while it does.

#include <swirl/server/detail/loop_buffers.hpp>
#include <swirl/server/detail/topic_index.hpp>
#include <swirl/server/stats.hpp>

#include <swirl/detail/asio.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace swirl {
template <class UserData>
class Connection;
}

namespace swirl::detail {

template <class UserData>
struct EventLoop {
    using Connection = swirl::Connection<UserData>;

    EventLoop(std::size_t index, std::size_t count) : index(index), count(count) {}

    bool running_in_this_thread() noexcept { return context.get_executor().running_in_this_thread(); }

    /// Ids are `sequence * count + index`: unique across loops, `id % count` is the loop, and with one loop they
    /// run 1, 2, 3…
    std::uint64_t next_id() noexcept { return next_sequence.fetch_add(1, std::memory_order_relaxed) * count + index; }

    const std::size_t index, count;
    // Declared before the context: coroutines the context destroys may still touch them.
    LoopBuffers buffers;  // this loop's thread only
    LoopCounters counters;
    mutable std::mutex topics_mutex;  // taken to change `topics` (on this loop) and to read it from other threads
    TopicIndex<Connection> topics;
    /// Subscription changes handed to this loop by other threads and not yet made: while any are, a publish from
    /// another thread is handed over even when no subscriber is there yet, so that it stays in order behind them.
    std::atomic<std::size_t> pending_changes{0};

    asio::io_context context{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard{context.get_executor()};

    // Declared after the context: connections left at destruction close their sockets before it goes.
    mutable std::mutex registry_mutex;
    std::unordered_map<std::uint64_t, std::shared_ptr<Connection>> connections;
    std::atomic<std::uint64_t> next_sequence{1};
};

} // namespace swirl::detail
