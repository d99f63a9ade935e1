// swirl_broadcast: the fan-out bench server. A text message "publish <payload>" from any client is sent to every
// established connection with `Server::broadcast` (the frame is encoded once and shared); anything else is echoed.
//   swirl_broadcast [common example flags: --host --port --threads --max-connections --log-level ...]
#include "cli.hpp"

#include <string_view>

int main(int argc, char** argv) {
    const examples::Cli cli(argc, argv, {});
    swirl::Server<> server(cli.settings());
    server.on_message([&server](auto& connection, swirl::Frame& frame) -> asio::awaitable<void> {
        constexpr std::string_view prefix = "publish ";
        const std::string_view payload = frame.payload;
        if (frame.is_text() && payload.starts_with(prefix))
            server.broadcast(payload.substr(prefix.size()));
        else
            connection.send(frame.payload, frame.opcode);
        co_return;
    });
    return examples::serve(server, cli);
}
