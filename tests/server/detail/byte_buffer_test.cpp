#include "doctest.hpp"

#include <swirl/server/detail/buffer_pool.hpp>
#include <swirl/server/detail/byte_buffer.hpp>

#include <cstddef>
#include <cstring>
#include <string_view>
#include <utility>

using swirl::detail::ByteBuffer;

TEST_CASE("byte buffer grows keeping its first bytes, at least doubling") {
    ByteBuffer b;
    CHECK(b.capacity() == 0);
    CHECK(b.data() == nullptr);

    b.grow(10, 0);
    REQUIRE(b.capacity() >= 10);
    CHECK(b.capacity() == ByteBuffer::min_growth);  // never less than a cache line
    std::memcpy(b.data(), "0123456789", 10);

    const char* const before = b.data();
    b.grow(b.capacity(), 10);  // fits: nothing moves
    CHECK(b.data() == before);

    const std::size_t old_capacity = b.capacity();
    b.grow(old_capacity + 1, 10);
    CHECK(b.capacity() >= 2 * old_capacity);
    CHECK(std::string_view(b.data(), 10) == "0123456789");

    b.grow(10'000, 4);
    CHECK(b.capacity() == 10'000);  // more than double: exactly what was asked
    CHECK(std::string_view(b.data(), 4) == "0123");
}

TEST_CASE("byte buffer moves and swaps its storage, leaving the source empty") {
    ByteBuffer a(100);
    const char* const storage = a.data();
    ByteBuffer b(std::move(a));
    CHECK(b.data() == storage);
    CHECK(b.capacity() == 100);
    CHECK(a.capacity() == 0);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    CHECK(a.data() == nullptr);

    ByteBuffer c(7);
    c = std::move(b);
    CHECK(c.data() == storage);
    CHECK(b.capacity() == 0);  // NOLINT(bugprone-use-after-move)

    ByteBuffer d;
    d.swap(c);
    CHECK(d.data() == storage);
    CHECK(d.capacity() == 100);
    CHECK(c.capacity() == 0);
}

TEST_CASE("output buffer pool lends buffers of any size the queue grows to, the last given first") {
    swirl::detail::OutputBufferPool pool;
    CHECK(pool.take().capacity() == 0);  // empty: a buffer without storage

    ByteBuffer small(ByteBuffer::min_growth), larger(4096);
    const char* const small_storage = small.data();
    const char* const larger_storage = larger.data();
    pool.give(std::move(small));
    pool.give(std::move(larger));
    CHECK(pool.size() == 2);
    CHECK(pool.bytes() == ByteBuffer::min_growth + 4096);
    CHECK(pool.next_capacity() == 4096);
    CHECK(pool.take().data() == larger_storage);
    CHECK(pool.take().data() == small_storage);
    CHECK(pool.bytes() == 0);

    pool.give(ByteBuffer());  // nothing to keep
    CHECK(pool.size() == 0);
}
