// Chat rooms on topics, as a Swoole or uWebSockets chat app would port: a room is the topic `room:NAME`, and every
// connection follows `user:ID`, so "push to a user" is a publish (Swoole's bind($fd, $uid) + push to that user).
// One text command per message; replies and room messages are text.
//   join ROOM         → joined ROOM N          (N members now); the others get `* ID joined ROOM`
//   leave ROOM        → left ROOM                                the others get `* ID left ROOM`
//   say ROOM TEXT     → every member, you too, gets `ID: TEXT`  (or `error not in ROOM`)
//   to ID TEXT        → sent N                 (N connections of user ID took `ID: TEXT`, 0 if none)
//   rooms             → rooms A,B,C            (rooms with members, sorted)
//   slow MS           → slept MS               (MS ≤ 2000, slept on the offload pool: nobody else waits)
// GET /metrics on the same port serves the server's statistics to Prometheus.
//   chat_server [--host 127.0.0.1] [--port 9501] [--threads N] [--tls-cert FILE --tls-key FILE [--tls-port 9502]]
#include "cli.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace {

/// The first word of `text` (up to a space), and the rest after that space.
std::pair<std::string_view, std::string_view> split_word(std::string_view text) {
    const auto space = text.find(' ');
    if (space == text.npos) return {text, {}};
    return {text.substr(0, space), text.substr(space + 1)};
}

constexpr std::string_view room_prefix = "room:";

} // namespace

int main(int argc, char** argv) {
    const examples::Cli cli(argc, argv, {});
    swirl::Server<> server(cli.settings());

    server.on_open([](auto& connection, const swirl::Request&) -> asio::awaitable<void> {
        connection.subscribe(fmt::format("user:{}", connection.id()));
        connection.send(fmt::format("welcome {}", connection.id()));
        co_return;
    });

    server.on_message([&server](auto& connection, swirl::Frame& frame) -> asio::awaitable<void> {
        if (frame.opcode != swirl::Opcode::text) co_return;
        const auto [command, rest] = split_word(frame.payload);
        const auto [name, text] = split_word(rest);  // name: a room, a user id or a number of milliseconds
        const std::string room = fmt::format("{}{}", room_prefix, name);
        const auto id = connection.id();

        if (command == "join" && !name.empty()) {
            const bool joined_now = connection.subscribe(room);  // false: already in the room
            connection.send(fmt::format("joined {} {}", name, server.subscribers(room)));
            if (joined_now) connection.publish(room, fmt::format("* {} joined {}", id, name));  // all but this one
        } else if (command == "leave" && !name.empty()) {
            if (connection.unsubscribe(room)) {
                connection.send(fmt::format("left {}", name));
                server.publish(room, fmt::format("* {} left {}", id, name));
            } else {
                connection.send(fmt::format("error not in {}", name));
            }
        } else if (command == "say" && !name.empty()) {
            if (connection.is_subscribed(room))
                server.publish(room, fmt::format("{}: {}", id, text));  // the sender too
            else
                connection.send(fmt::format("error not in {}", name));
        } else if (command == "to" && !name.empty()) {
            const auto result = server.publish(fmt::format("user:{}", name), fmt::format("{}: {}", id, text));
            connection.send(fmt::format("sent {}", result.total()));
        } else if (command == "rooms") {
            std::string names;
            for (const auto& topic : server.topics(room_prefix)) {
                if (!names.empty()) names += ',';
                names += topic.substr(room_prefix.size());
            }
            connection.send("rooms " + names);
        } else if (unsigned ms = 0;
                   command == "slow" && std::from_chars(name.data(), name.data() + name.size(), ms).ec == std::errc{}) {
            // Blocking work goes to the offload pool: the event loop serves everyone else meanwhile, and only this
            // connection waits (its next message is read once this handler returns).
            try {
                const auto slept = co_await server.offload([ms = std::chrono::milliseconds(std::min(ms, 2000u))] {
                    std::this_thread::sleep_for(ms);
                    return ms;
                });
                connection.send(fmt::format("slept {}", slept.count()));
            } catch (const swirl::OffloadError& e) {  // the task queue is full, or the server is stopping
                connection.send(fmt::format("error {}", e.what()));
            }
        } else {
            connection.send("error commands: join ROOM, leave ROOM, say ROOM TEXT, to ID TEXT, rooms, slow MS");
        }
    });

    // Still subscribed here: tell each room this connection was in. It leaves every topic after this handler.
    server.on_close([](auto& connection, const swirl::CloseInfo&) -> asio::awaitable<void> {
        for (const std::string& topic : connection.topics())
            if (topic.starts_with(room_prefix))
                connection.publish(topic, fmt::format("* {} left {}", connection.id(), topic.substr(room_prefix.size())));
        co_return;
    });

    server.on_request([&server](auto&, const swirl::Request& req, swirl::Response& res) -> asio::awaitable<void> {
        if (req.method == "GET" && req.path() == "/metrics") {
            res.set_header("Content-Type", "text/plain; version=0.0.4");
            res.body = swirl::to_prometheus(server.stats());
        } else {
            res.status = 404;
            res.body = "not found\n";
        }
        co_return;
    });

    return examples::serve(server, cli);
}
