#include "doctest.hpp"

#include <swirl/server/detail/output_queue.hpp>
#include <swirl/protocol/frame.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

/// Every piece for_each_piece hands out, in order.
std::vector<std::string_view> pieces(const swirl::detail::OutputQueue& q) {
    std::vector<std::string_view> out;
    q.for_each_piece([&](const char* data, std::size_t n) { out.emplace_back(data, n); });
    return out;
}

std::string flatten(const swirl::detail::OutputQueue& q) {
    std::string out;
    for (auto p : pieces(q)) out += p;
    return out;
}

std::shared_ptr<const std::string> shared(std::string_view payload) {
    return std::make_shared<const std::string>(swirl::pack(payload, swirl::Opcode::binary));
}

} // namespace

TEST_CASE("output queue frames are byte-identical to pack") {
    for (std::size_t n : {0u, 1u, 125u, 126u, 65535u, 65536u, 70000u}) {
        for (auto op : {swirl::Opcode::text, swirl::Opcode::binary, swirl::Opcode::continuation, swirl::Opcode::ping,
                        swirl::Opcode::pong, swirl::Opcode::close}) {
            for (bool fin : {true, false}) {
                CAPTURE(n);
                CAPTURE(static_cast<int>(op));
                CAPTURE(fin);
                const std::string payload(n, static_cast<char>('A' + n % 26));
                swirl::detail::OutputQueue q;
                q.append_frame(op, fin, payload);
                const std::string expected = swirl::pack(payload, op, fin);
                CHECK(flatten(q) == expected);
                CHECK(q.size() == expected.size());
            }
        }
    }
}

TEST_CASE("output queue coalesces consecutive frames into one piece") {
    swirl::detail::OutputQueue q;
    q.append_frame(swirl::Opcode::text, true, "one");
    q.append_frame(swirl::Opcode::binary, false, "two");
    q.append_frame(swirl::Opcode::continuation, true, "");
    const auto p = pieces(q);
    REQUIRE(p.size() == 1);
    CHECK(p[0] == swirl::pack("one") + swirl::pack("two", swirl::Opcode::binary, false) +
                      swirl::pack("", swirl::Opcode::continuation));
}

TEST_CASE("output queue interleaves shared frames in order with flat frames") {
    swirl::detail::OutputQueue q;
    const auto s1 = shared("broadcast one");
    const auto s2 = shared("broadcast two");
    const auto s3 = shared(std::string(300, 'b'));
    const auto s4 = shared("tail");

    q.append_shared(s1);  // at offset 0, before any flat bytes
    q.append_frame(swirl::Opcode::text, true, "a");
    q.append_shared(s2);
    q.append_shared(s3);  // two shared frames back to back
    q.append_frame(swirl::Opcode::text, true, "b");
    q.append_frame(swirl::Opcode::ping, true, "c");
    q.append_shared(s4);  // last, nothing flat after it

    const std::string expected = *s1 + swirl::pack("a") + *s2 + *s3 + swirl::pack("b") +
                                 swirl::pack("c", swirl::Opcode::ping) + *s4;
    CHECK(flatten(q) == expected);
    CHECK(q.size() == expected.size());

    const auto p = pieces(q);
    REQUIRE(p.size() == 6);
    for (auto piece : p) CHECK_FALSE(piece.empty());  // no empty flat pieces between shared ones
    // Shared frames are referenced, not copied.
    CHECK(p[0].data() == s1->data());
    CHECK(p[2].data() == s2->data());
    CHECK(p[3].data() == s3->data());
    CHECK(p[5].data() == s4->data());
    CHECK(p[1] == swirl::pack("a"));
    CHECK(p[4] == swirl::pack("b") + swirl::pack("c", swirl::Opcode::ping));
}

TEST_CASE("output queue copies encoded bytes into the flat piece they join") {
    swirl::detail::OutputQueue q;
    const std::string encoded = swirl::pack("copied");
    q.append_frame(swirl::Opcode::text, true, "a");
    q.append_encoded(encoded);
    q.append_frame(swirl::Opcode::text, true, "b");
    const std::string expected = swirl::pack("a") + encoded + swirl::pack("b");
    CHECK(q.size() == expected.size());
    CHECK(q.held_count() == 0);
    const auto p = pieces(q);
    REQUIRE(p.size() == 1);
    CHECK(p[0] == expected);
}

TEST_CASE("output queue shares one encoded frame among several queues") {
    const auto s = shared("hello everyone");
    swirl::detail::OutputQueue a, b;
    a.append_frame(swirl::Opcode::text, true, "to a");
    a.append_shared(s);
    b.append_shared(s);
    b.append_frame(swirl::Opcode::text, true, "to b");
    CHECK(s.use_count() == 3);
    CHECK(flatten(a) == swirl::pack("to a") + *s);
    CHECK(flatten(b) == *s + swirl::pack("to b"));
    a.clear();
    b.clear();
    CHECK(s.use_count() == 1);
}

TEST_CASE("output queue size accounts for every appended byte") {
    swirl::detail::OutputQueue q;
    CHECK(q.empty());
    CHECK(q.size() == 0);
    CHECK(pieces(q).empty());

    std::size_t expected = 0;
    q.append_frame(swirl::Opcode::text, true, "");
    expected += 2;
    CHECK(q.size() == expected);
    CHECK_FALSE(q.empty());

    q.append_frame(swirl::Opcode::binary, true, std::string(200, 'x'));
    expected += 4 + 200;
    CHECK(q.size() == expected);

    const auto s = shared(std::string(70000, 'y'));
    q.append_shared(s);
    expected += s->size();
    CHECK(s->size() == 10 + 70000);
    CHECK(q.size() == expected);

    q.append_shared(std::make_shared<const std::string>(""));  // an empty shared buffer adds nothing
    CHECK(q.size() == expected);
    CHECK(flatten(q).size() == expected);

    q.clear();
    CHECK(q.empty());
    CHECK(q.size() == 0);
    CHECK(flatten(q).empty());
}

TEST_CASE("output queue clear keeps a small buffer and drops a large one") {
    // Observed through the capacity and where the flat bytes live: a kept buffer is reused at the same address; a
    // dropped one leaves none, and the next frame gets a small new one.
    swirl::detail::OutputQueue q;
    q.append_frame(swirl::Opcode::binary, true, std::string(1000, 'k'));
    const char* small_buffer = pieces(q).at(0).data();
    q.clear();
    CHECK(q.empty());
    q.append_frame(swirl::Opcode::binary, true, std::string(1000, 'k'));
    CHECK(pieces(q).at(0).data() == small_buffer);
    q.clear();
    q.append_frame(swirl::Opcode::text, true, "hi");
    CHECK(pieces(q).at(0).data() == small_buffer);  // still the kept buffer
    CHECK(flatten(q) == swirl::pack("hi"));

    swirl::detail::OutputQueue big;
    big.append_frame(swirl::Opcode::binary, true, std::string(100 * 1024, 'L'));
    big.clear();  // default keep_capacity is 64 KiB
    CHECK(big.empty());
    CHECK(big.capacity() == 0);
    big.append_frame(swirl::Opcode::text, true, "hi");
    CHECK(big.capacity() == swirl::detail::ByteBuffer::min_growth);
    CHECK(flatten(big) == swirl::pack("hi"));

    // An explicit keep_capacity moves the threshold both ways.
    swirl::detail::OutputQueue keep;
    keep.append_frame(swirl::Opcode::binary, true, std::string(100 * 1024, 'L'));
    const char* large_buffer = pieces(keep).at(0).data();
    keep.clear(1024 * 1024);
    keep.append_frame(swirl::Opcode::text, true, "hi");
    CHECK(pieces(keep).at(0).data() == large_buffer);

    swirl::detail::OutputQueue drop;
    drop.append_frame(swirl::Opcode::binary, true, std::string(1000, 'k'));
    drop.clear(0);
    CHECK(drop.capacity() == 0);
    drop.append_frame(swirl::Opcode::text, true, "hi");
    CHECK(flatten(drop) == swirl::pack("hi"));
}

TEST_CASE("an empty output queue hands its buffer over and adopts another (an idle connection holds none)") {
    swirl::detail::OutputQueue q;
    q.append_frame(swirl::Opcode::binary, true, std::string(6000, 'b'));
    q.clear();
    REQUIRE(q.capacity() >= 6000);
    swirl::detail::ByteBuffer buffer = q.take_buffer();
    CHECK(buffer.capacity() >= 6000);
    CHECK(q.capacity() == 0);  // nothing left behind
    const char* const storage = buffer.data();

    swirl::detail::OutputQueue other;
    other.adopt_buffer(std::move(buffer));  // its old contents are discarded
    CHECK(other.empty());
    other.append_frame(swirl::Opcode::text, true, "hi");
    CHECK(pieces(other).at(0).data() == storage);  // the adopted storage, no allocation
    CHECK(flatten(other) == swirl::pack("hi"));
}

TEST_CASE("output queue clear forgets shared frames") {
    swirl::detail::OutputQueue q;
    q.append_frame(swirl::Opcode::text, true, "x");
    q.append_shared(shared("s"));
    q.clear();
    q.append_frame(swirl::Opcode::text, true, "after");
    const auto p = pieces(q);
    REQUIRE(p.size() == 1);
    CHECK(p[0] == swirl::pack("after"));
    CHECK(q.size() == p[0].size());
}

TEST_CASE("output queue swap exchanges contents and sizes") {
    const auto s = shared("shared");
    swirl::detail::OutputQueue a, b;
    a.append_frame(swirl::Opcode::text, true, "a1");
    a.append_shared(s);
    a.append_frame(swirl::Opcode::text, true, "a2");
    b.append_frame(swirl::Opcode::binary, true, std::string(500, 'b'));
    const std::string a_bytes = flatten(a), b_bytes = flatten(b);
    const std::size_t a_size = a.size(), b_size = b.size();

    a.swap(b);
    CHECK(flatten(a) == b_bytes);
    CHECK(flatten(b) == a_bytes);
    CHECK(a.size() == b_size);
    CHECK(b.size() == a_size);
    CHECK(pieces(b).size() == 3);

    swirl::detail::OutputQueue empty;
    b.swap(empty);
    CHECK(b.empty());
    CHECK(pieces(b).empty());
    CHECK(flatten(empty) == a_bytes);
    CHECK(empty.size() == a_size);
}

TEST_CASE("output queue holds an owned payload in place and hands it back on clear") {
    swirl::detail::OutputQueue q;
    std::string payload(20000, 'p');
    payload[0] = 'P';
    const char* storage = payload.data();
    q.append_frame(swirl::Opcode::text, true, "before");
    q.append_owned(swirl::Opcode::binary, true, std::move(payload));
    q.append_shared(shared("shared"));
    q.append_frame(swirl::Opcode::text, true, "after");

    std::string expected_payload(20000, 'p');
    expected_payload[0] = 'P';
    const std::string expected = swirl::pack("before") + swirl::pack(expected_payload, swirl::Opcode::binary) +
                                 *shared("shared") + swirl::pack("after");
    CHECK(flatten(q) == expected);
    CHECK(q.size() == expected.size());
    const auto p = pieces(q);
    REQUIRE(p.size() == 4);  // "before" and the owned frame's header; the payload; the shared frame; "after"
    CHECK(p[1].data() == storage);  // not copied
    CHECK(p[0] == swirl::pack("before") + swirl::pack(expected_payload, swirl::Opcode::binary).substr(0, 4));

    swirl::detail::BufferPool recycled;
    q.clear(swirl::detail::OutputQueue::default_kept_capacity, &recycled);
    CHECK(q.empty());
    CHECK(pieces(q).empty());
    REQUIRE(recycled.size() == 1);  // the owned payload, not the shared frame
    const std::string reused = recycled.take();
    CHECK(reused.data() == storage);
    CHECK(reused == expected_payload);  // contents and size kept: the reader overwrites them

    q.append_owned(swirl::Opcode::binary, true, std::string(10000, 'x'));
    q.clear();  // without a place to recycle to, the payload is freed
    CHECK(q.empty());
}

TEST_CASE("output queue swap moves owned payloads along") {
    swirl::detail::OutputQueue a, b;
    a.append_owned(swirl::Opcode::binary, true, std::string(9000, 'o'));
    const std::string bytes = flatten(a);
    a.swap(b);
    CHECK(a.empty());
    CHECK(flatten(b) == bytes);
}

TEST_CASE("output queue sets RSV1 on a compressed message's frame, as pack does") {
    swirl::detail::OutputQueue q;
    q.append_frame(swirl::Opcode::text, true, "\xF2\x48\x05\x01", swirl::rsv::rsv1);
    q.append_frame(swirl::Opcode::text, true, "plain");
    const std::string expected = swirl::pack("\xF2\x48\x05\x01", swirl::Opcode::text, true, std::nullopt, swirl::rsv::rsv1) +
                                 swirl::pack("plain", swirl::Opcode::text);
    CHECK(flatten(q) == expected);
    CHECK(static_cast<std::uint8_t>(expected[0]) == 0xC1);  // FIN, RSV1, text
    const auto f = swirl::unpack(std::string_view(expected).substr(0, 6));
    REQUIRE(f.has_value());
    CHECK(f->rsv == swirl::rsv::rsv1);
}
