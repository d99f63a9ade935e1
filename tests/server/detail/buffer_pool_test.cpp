#include "doctest.hpp"

#include <swirl/server/detail/buffer_pool.hpp>
#include <swirl/server/detail/loop_buffers.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

using swirl::detail::BufferPool;

TEST_CASE("buffer pool hands back the buffer given last, contents and all") {
    BufferPool pool;
    CHECK(pool.next_capacity() == 0);
    CHECK(pool.take().capacity() == std::string().capacity());  // empty: a fresh string

    std::string first(5000, 'a'), second(7000, 'b');
    const char* first_storage = first.data();
    const char* second_storage = second.data();
    const std::size_t second_capacity = second.capacity();
    pool.give(std::move(first));
    pool.give(std::move(second));
    CHECK(pool.size() == 2);
    CHECK(pool.next_capacity() == second_capacity);

    const std::string last = pool.take();
    CHECK(last.data() == second_storage);  // the same allocation, not a copy
    CHECK(last == std::string(7000, 'b'));
    CHECK(pool.take().data() == first_storage);
    CHECK(pool.size() == 0);
    CHECK(pool.bytes() == 0);
}

TEST_CASE("buffer pool keeps no small buffers and stays within its limits") {
    BufferPool pool;
    pool.give(std::string("short"));
    pool.give(std::string(BufferPool::min_capacity / 2, 's'));
    CHECK(pool.size() == 0);
    CHECK_FALSE(pool.accepts(BufferPool::min_capacity - 1));
    CHECK(pool.accepts(BufferPool::min_capacity));

    // Count limit.
    for (std::size_t i = 0; i < BufferPool::max_buffers + 5; ++i) pool.give(std::string(BufferPool::min_capacity, 'x'));
    CHECK(pool.size() == BufferPool::max_buffers);
    CHECK_FALSE(pool.accepts(BufferPool::min_capacity));
    while (pool.size() != 0) pool.take();
    CHECK(pool.bytes() == 0);

    // Byte limit: capacities count, and a buffer that would pass the limit is freed, not kept.
    const std::size_t quarter = BufferPool::max_bytes / 4;
    for (int i = 0; i < 3; ++i) pool.give(std::string(quarter, 'q'));
    CHECK(pool.size() == 3);
    CHECK(pool.bytes() >= 3 * quarter);
    CHECK_FALSE(pool.accepts(BufferPool::max_bytes - 3 * quarter + 1));
    pool.give(std::string(quarter + 64, 'r'));
    CHECK(pool.size() == 3);
    CHECK(pool.bytes() <= BufferPool::max_bytes);
    CHECK(pool.take() == std::string(quarter, 'q'));
    CHECK(pool.accepts(quarter));
}

TEST_CASE("reader pool hands back the reader given last, and makes one when empty") {
    swirl::detail::ReaderPool pool;
    const swirl::ReaderLimits limits{1000, 2000};
    std::unique_ptr<swirl::MessageReader> made = pool.take(limits);
    REQUIRE(made);
    CHECK(made->limits().max_frame_size == 1000);
    CHECK(made->limits().max_message_size == 2000);
    CHECK(made->at_rest());
    swirl::MessageReader* const address = made.get();
    pool.give(std::move(made));
    CHECK(pool.size() == 1);
    CHECK(pool.take(limits).get() == address);
    CHECK(pool.size() == 0);
    for (std::size_t i = 0; i < swirl::detail::ReaderPool::max_readers + 5; ++i)
        pool.give(std::make_unique<swirl::MessageReader>(swirl::Role::server, limits));
    CHECK(pool.size() == swirl::detail::ReaderPool::max_readers);  // the rest were freed
}
