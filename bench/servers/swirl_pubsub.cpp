// swirl_pubsub: the pub/sub bench server, on swirl's topics. Text messages:
//   "subscribe <topic>"          → `Connection::subscribe`, answered "subscribed <topic>"
//   "publish <topic> <payload>"  → `Server::publish`: <payload> to every subscriber of <topic> (encoded once)
// anything else is echoed.
//   swirl_pubsub [common example flags: --host --port --threads --max-connections --log-level ...]
#include "cli.hpp"

#include <string>
#include <string_view>

int main(int argc, char** argv) {
    const examples::Cli cli(argc, argv, {});
    swirl::Server<> server(cli.settings());
    // Never waits: a plain handler, no coroutine frame per message.
    server.on_message([&server](auto& connection, swirl::Frame& frame) {
        constexpr std::string_view subscribe = "subscribe ", publish = "publish ";
        const std::string_view message = frame.payload;
        if (frame.is_text() && message.starts_with(subscribe)) {
            const std::string_view topic = message.substr(subscribe.size());
            connection.subscribe(topic);
            connection.send(std::string("subscribed ").append(topic));
        } else if (const auto space = message.find(' ', publish.size());
                   frame.is_text() && message.starts_with(publish) && space != std::string_view::npos) {
            server.publish(message.substr(publish.size(), space - publish.size()), message.substr(space + 1));
        } else {
            connection.send(std::move(frame.payload), frame.opcode);
        }
    });
    return examples::serve(server, cli);
}
