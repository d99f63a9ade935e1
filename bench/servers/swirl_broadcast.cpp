// swirl_broadcast: the fan-out bench server. A text message "publish <payload>" from any client is sent to every
// established connection with `Server::broadcast` (the frame is encoded once and shared; with permessage-deflate,
// compressed once); anything else is echoed. --per-recipient 1: one `send` per connection instead (each compressing
// its own copy: the per-recipient baseline of the compressed broadcast case).
//   swirl_broadcast [common example flags: --host --port --threads --max-connections --log-level --deflate ...]
//                   [--per-recipient 1]
#include "cli.hpp"

#include <string_view>

int main(int argc, char** argv) {
    const examples::Cli cli(argc, argv, {"--per-recipient"});
    const bool per_recipient = cli.number("--per-recipient", 0) != 0;
    swirl::Server<> server(cli.settings());
    server.on_message([&server, per_recipient](auto& connection, swirl::Frame& frame) -> asio::awaitable<void> {
        constexpr std::string_view prefix = "publish ";
        const std::string_view payload = frame.payload;
        if (frame.is_text() && payload.starts_with(prefix) && per_recipient)
            server.for_each_connection([body = payload.substr(prefix.size())](auto& c) { c.send(body, swirl::Opcode::text); });
        else if (frame.is_text() && payload.starts_with(prefix))
            server.broadcast(payload.substr(prefix.size()));
        else
            connection.send(frame.payload, frame.opcode);
        co_return;
    });
    return examples::serve(server, cli);
}
