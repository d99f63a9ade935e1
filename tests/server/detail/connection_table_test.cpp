// server/detail/connection_table.hpp: an event loop's connections by id, open addressing.
#include "doctest.hpp"

#include <swirl/server/detail/connection_table.hpp>

#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <unordered_map>
#include <vector>

namespace {

struct Conn {
    std::uint64_t id_;
    std::uint64_t id() const noexcept { return id_; }
};

using Table = swirl::detail::ConnectionTable<Conn>;

std::multiset<std::uint64_t> ids_of(const Table& t) {
    std::multiset<std::uint64_t> ids;
    for (const auto& c : t) ids.insert(c->id());
    return ids;
}

} // namespace

TEST_CASE("a connection table finds what it holds, by id, and forgets what it erased") {
    Table t;
    CHECK(t.empty());
    CHECK(t.capacity() == 0);  // nothing allocated until the first insert
    CHECK(t.find(1) == nullptr);
    CHECK_FALSE(t.erase(1));
    CHECK(t.begin() == t.end());

    auto a = std::make_shared<Conn>(Conn{1});
    auto b = std::make_shared<Conn>(Conn{2});
    t.insert(a);
    t.insert(b);
    CHECK(t.size() == 2);
    CHECK(t.capacity() == Table::min_capacity);
    REQUIRE(t.find(1) != nullptr);
    CHECK(t.find(1)->get() == a.get());
    CHECK(t.find(2)->get() == b.get());
    CHECK(t.contains(2));
    CHECK_FALSE(t.contains(3));
    CHECK(a.use_count() == 2);  // the table shares ownership

    CHECK(t.erase(1));
    CHECK(a.use_count() == 1);
    CHECK_FALSE(t.contains(1));
    CHECK(t.contains(2));
    CHECK_FALSE(t.erase(1));
    CHECK(ids_of(t) == std::multiset<std::uint64_t>{2});
}

TEST_CASE("a connection table grows at 3/4 full, and gives memory back once a burst has ended") {
    Table t;
    std::vector<std::uint64_t> ids;
    for (std::uint64_t id = 7; ids.size() < 10000; id += 3) ids.push_back(id);  // one loop's residue of three
    for (const std::uint64_t id : ids) t.insert(std::make_shared<Conn>(Conn{id}));
    CHECK(t.size() == 10000);
    CHECK(t.capacity() == 16384);  // 16 bytes a slot: 26 bytes per connection
    for (const std::uint64_t id : ids) REQUIRE(t.contains(id));
    CHECK_FALSE(t.contains(8));
    CHECK(ids_of(t) == std::multiset<std::uint64_t>(ids.begin(), ids.end()));

    for (std::size_t k = 0; k < ids.size() - 10; ++k) REQUIRE(t.erase(ids[k]));
    CHECK(t.size() == 10);
    CHECK(t.capacity() <= 64);
    for (std::size_t k = ids.size() - 10; k < ids.size(); ++k) CHECK(t.contains(ids[k]));
    for (std::size_t k = ids.size() - 10; k < ids.size(); ++k) CHECK(t.erase(ids[k]));
    CHECK(t.empty());
    CHECK(t.begin() == t.end());
}

TEST_CASE("a connection table agrees with std::unordered_map under random churn") {
    // Small tables wrap their probe runs around the end of the array; erasing shifts runs back across it.
    std::mt19937_64 rng(42);
    for (const std::uint64_t key_range : {40ull, 1000ull, 1ull << 40}) {
        Table t;
        std::unordered_map<std::uint64_t, std::shared_ptr<Conn>> reference;
        for (int step = 0; step < 20000; ++step) {
            const std::uint64_t id = 1 + rng() % key_range;
            if (rng() % 3 != 0 && !reference.contains(id)) {
                auto c = std::make_shared<Conn>(Conn{id});
                reference.emplace(id, c);
                t.insert(std::move(c));
            } else {
                REQUIRE(t.erase(id) == (reference.erase(id) == 1));
            }
            REQUIRE(t.size() == reference.size());
            REQUIRE(t.size() * 4 <= t.capacity() * 3);
            const std::uint64_t probe = 1 + rng() % key_range;
            const auto* found = t.find(probe);
            const auto it = reference.find(probe);
            REQUIRE((found != nullptr) == (it != reference.end()));
            if (found) REQUIRE(found->get() == it->second.get());
        }
        std::multiset<std::uint64_t> expected;
        for (const auto& [id, c] : reference) {
            expected.insert(id);
            CHECK(c.use_count() == 2);
        }
        CHECK(ids_of(t) == expected);
    }
}

TEST_CASE("a connection table releases its connections when it goes") {
    auto c = std::make_shared<Conn>(Conn{5});
    {
        Table t;
        t.insert(c);
        CHECK(c.use_count() == 2);
    }
    CHECK(c.use_count() == 1);
}
