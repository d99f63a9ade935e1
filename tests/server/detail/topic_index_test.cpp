#include "doctest.hpp"

#include <swirl/server/detail/topic_index.hpp>

#include <algorithm>
#include <cstddef>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

struct Sub {
    int id;
};
using Index = swirl::detail::TopicIndex<Sub>;

std::vector<int> members(const Index& index, const std::string& topic) {
    std::vector<int> ids;
    index.for_each_subscriber(topic, [&](Sub& s) { ids.push_back(s.id); });
    std::sort(ids.begin(), ids.end());
    return ids;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

} // namespace

TEST_CASE("topic index: subscribe, unsubscribe, membership and listing") {
    Index index;
    Sub a{1}, b{2}, c{3};
    CHECK(index.subscribe(a, "news"));
    CHECK_FALSE(index.subscribe(a, "news"));  // already
    CHECK(index.subscribe(b, "news"));
    CHECK(index.subscribe(b, "sport"));
    CHECK(index.subscribe(c, "sport"));
    CHECK(members(index, "news") == std::vector<int>{1, 2});
    CHECK(members(index, "sport") == std::vector<int>{2, 3});
    CHECK(members(index, "none").empty());
    CHECK(index.subscribers("news") == 2);
    CHECK(index.topic_count() == 2);
    CHECK(index.subscription_count() == 4);
    CHECK(index.is_subscribed(b, "sport"));
    CHECK_FALSE(index.is_subscribed(a, "sport"));
    CHECK(sorted(index.topics_of(b)) == std::vector<std::string>{"news", "sport"});

    CHECK(index.unsubscribe(a, "news"));
    CHECK_FALSE(index.unsubscribe(a, "news"));
    CHECK_FALSE(index.unsubscribe(a, "never"));
    CHECK(members(index, "news") == std::vector<int>{2});
    CHECK(index.topics_of(a).empty());

    index.unsubscribe_all(b);
    CHECK(index.topic_count() == 1);  // "news" had only b left: gone
    CHECK(members(index, "sport") == std::vector<int>{3});
    CHECK(index.subscription_count() == 1);
    index.unsubscribe_all(c);
    index.unsubscribe_all(c);  // nothing left: harmless
    CHECK(index.topic_count() == 0);
    CHECK(index.subscription_count() == 0);
}

TEST_CASE("topic index: a topic's name is looked up by value, not by the caller's storage") {
    Index index;
    Sub a{1};
    std::string name = "room:1";
    CHECK(index.subscribe(a, name));
    name = "changed";
    CHECK(index.is_subscribed(a, "room:1"));
    std::vector<std::string> topics;
    index.for_each_topic([&](std::string_view t, std::size_t n) {
        topics.emplace_back(t);
        CHECK(n == 1);
    });
    CHECK(topics == std::vector<std::string>{"room:1"});
}

TEST_CASE("topic index: random operations agree with a plain map of sets") {
    std::mt19937 rng(12345);
    constexpr int subscribers = 40, topics = 25;
    std::vector<Sub> subs;
    for (int i = 0; i < subscribers; ++i) subs.push_back({i});
    Index index;
    std::map<std::string, std::set<int>> model;
    const auto topic = [](int t) { return std::string("t").append(std::to_string(t)); };  // not "t" + ...: g++ 12 -O3 -Wrestrict
    for (int step = 0; step < 20000; ++step) {
        Sub& s = subs[std::uniform_int_distribution<int>(0, subscribers - 1)(rng)];
        const std::string t = topic(std::uniform_int_distribution<int>(0, topics - 1)(rng));
        switch (std::uniform_int_distribution<int>(0, 9)(rng)) {
        case 0: {  // leave everything
            index.unsubscribe_all(s);
            for (auto it = model.begin(); it != model.end();) {
                it->second.erase(s.id);
                it = it->second.empty() ? model.erase(it) : std::next(it);
            }
            break;
        }
        case 1: case 2: case 3: case 4: {
            const bool fresh = !model[t].count(s.id);
            REQUIRE(index.subscribe(s, t) == fresh);
            model[t].insert(s.id);
            break;
        }
        default: {
            const bool had = model.count(t) && model[t].count(s.id);
            REQUIRE(index.unsubscribe(s, t) == had);
            if (model.count(t)) {
                model[t].erase(s.id);
                if (model[t].empty()) model.erase(t);
            }
        }
        }
        if (step % 97 == 0) {
            std::size_t links = 0;
            REQUIRE(index.topic_count() == model.size());
            for (int i = 0; i < topics; ++i) {
                const auto it = model.find(topic(i));
                const std::vector<int> expected = it == model.end() ? std::vector<int>{}
                                                                    : std::vector<int>(it->second.begin(), it->second.end());
                REQUIRE(members(index, topic(i)) == expected);
                links += expected.size();
                for (int j = 0; j < subscribers; ++j) REQUIRE(index.is_subscribed(subs[j], topic(i)) == (it != model.end() && it->second.count(j)));
            }
            REQUIRE(index.subscription_count() == links);
        }
    }
}
