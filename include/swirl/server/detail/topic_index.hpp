#pragma once
/// Which subscribers follow which topics, for one event loop: the index behind `Connection::subscribe` and
/// `Server::publish`. A plain data structure, not thread-safe; the event loop guards it (see event_loop.hpp).
///
/// Costs: subscribe, unsubscribe and `is_subscribed` are O(1) amortised whatever the number of topics and
/// subscribers; visiting a topic's subscribers is O(its subscribers), over a contiguous array; leaving every topic
/// is O(the subscriber's topics). A topic exists while it has a subscriber.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace swirl::detail {

/// Heterogeneous lookup: a `std::string_view` finds a `std::string` key without building one.
struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

template <class Subscriber>
class TopicIndex {
    struct Topic {
        const std::string* name = nullptr;  // the map's key
        std::vector<Subscriber*> members;
    };
    /// One subscription: where it sits in its topic's members and in its subscriber's topics (for swap-removal).
    struct Link {
        const Subscriber* subscriber;
        const Topic* topic;
        bool operator==(const Link&) const = default;
    };
    struct LinkHash {
        std::size_t operator()(const Link& l) const noexcept {
            const auto a = reinterpret_cast<std::uintptr_t>(l.subscriber), b = reinterpret_cast<std::uintptr_t>(l.topic);
            return std::hash<std::uintptr_t>{}(a ^ (b * 0x9E3779B97F4A7C15ull));
        }
    };
    struct Slots {
        std::size_t member;  // index in topic->members
        std::size_t own;     // index in the subscriber's topics
    };

public:
    /// False when `s` already follows `topic`.
    bool subscribe(Subscriber& s, std::string_view topic) {
        auto it = topics_.find(topic);
        if (it == topics_.end()) {
            it = topics_.emplace(std::string(topic), Topic{}).first;
            it->second.name = &it->first;
        }
        Topic& t = it->second;
        std::vector<Topic*>& own = subscriptions_[&s];
        if (!links_.try_emplace(Link{&s, &t}, Slots{t.members.size(), own.size()}).second) return false;
        t.members.push_back(&s);
        own.push_back(&t);
        return true;
    }

    /// False when `s` did not follow `topic`.
    bool unsubscribe(Subscriber& s, std::string_view topic) {
        const auto t = topics_.find(topic);
        if (t == topics_.end()) return false;
        const auto link = links_.find(Link{&s, &t->second});
        if (link == links_.end()) return false;
        remove(link);
        return true;
    }

    /// Leaves every topic `s` follows.
    void unsubscribe_all(Subscriber& s) {
        const auto own = subscriptions_.find(&s);
        if (own == subscriptions_.end()) return;
        while (!own->second.empty()) {
            const auto last = own->second.size() - 1;
            remove(links_.find(Link{&s, own->second[last]}));
            if (last == 0) return;  // removing the last subscription erased `own`
        }
    }

    bool is_subscribed(const Subscriber& s, std::string_view topic) const {
        const auto t = topics_.find(topic);
        return t != topics_.end() && links_.contains(Link{&s, &t->second});
    }

    /// The topics `s` follows, in no particular order.
    std::vector<std::string> topics_of(const Subscriber& s) const {
        std::vector<std::string> names;
        if (const auto own = subscriptions_.find(&s); own != subscriptions_.end())
            for (const Topic* t : own->second) names.push_back(*t->name);
        return names;
    }

    /// Calls `f(subscriber)` for each subscriber of `topic`; returns how many there were. `f` must not subscribe
    /// or unsubscribe anyone.
    template <class F>
    std::size_t for_each_subscriber(std::string_view topic, F&& f) const {
        const auto t = topics_.find(topic);
        if (t == topics_.end()) return 0;
        const std::vector<Subscriber*>& members = t->second.members;
        for (Subscriber* s : members) f(*s);
        return members.size();
    }

    std::size_t subscribers(std::string_view topic) const {
        const auto t = topics_.find(topic);
        return t == topics_.end() ? 0 : t->second.members.size();
    }

    /// Every topic with at least one subscriber, in no particular order.
    template <class F>
    void for_each_topic(F&& f) const {
        for (const auto& [name, topic] : topics_) f(std::string_view(name), topic.members.size());
    }

    std::size_t topic_count() const noexcept { return topics_.size(); }
    std::size_t subscription_count() const noexcept { return links_.size(); }

private:
    void remove(typename std::unordered_map<Link, Slots, LinkHash>::iterator link) {
        const Subscriber* s = link->first.subscriber;
        Topic& t = const_cast<Topic&>(*link->first.topic);
        const Slots slots = link->second;
        links_.erase(link);

        Subscriber* moved = t.members.back();  // swap-remove from the topic, and fix the moved one's link
        t.members[slots.member] = moved;
        t.members.pop_back();
        if (moved != s) links_.find(Link{moved, &t})->second.member = slots.member;

        const auto own = subscriptions_.find(s);
        Topic* moved_topic = own->second.back();  // swap-remove from the subscriber's topics
        own->second[slots.own] = moved_topic;
        own->second.pop_back();
        if (moved_topic != &t) links_.find(Link{s, moved_topic})->second.own = slots.own;

        if (own->second.empty()) subscriptions_.erase(own);
        if (t.members.empty()) topics_.erase(topics_.find(*t.name));
    }

    std::unordered_map<std::string, Topic, StringHash, std::equal_to<>> topics_;
    std::unordered_map<Link, Slots, LinkHash> links_;
    std::unordered_map<const Subscriber*, std::vector<Topic*>> subscriptions_;
};

} // namespace swirl::detail
