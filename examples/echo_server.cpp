// Echoes every text and binary message back with its opcode.
//   echo_server [--host 127.0.0.1] [--port 9501] [--max-message BYTES] [--handshake-timeout SECONDS]
//               [--subprotocol NAME ...] [--tls-cert FILE --tls-key FILE [--tls-port 9502]]   (wss beside ws)
//               [--deflate[=shared|dedicated] [--deflate-window BITS]]   (permessage-deflate; declined without)
#include "cli.hpp"

int main(int argc, char** argv) {
    const examples::Cli cli(argc, argv, {"--max-message", "--handshake-timeout", "--subprotocol"});
    swirl::Settings settings = cli.settings();
    settings.max_message_size = settings.max_frame_size = static_cast<std::size_t>(cli.number("--max-message", 64 << 20));
    settings.handshake_timeout = std::chrono::milliseconds(static_cast<long>(cli.number("--handshake-timeout", 10) * 1000));
    settings.subprotocols = cli.subprotocols();

    swirl::Server<> server(settings);
    // A handler that never waits can be a plain function: no coroutine frame per message. Moving the payload into
    // send() spares a large message its copy into the output queue.
    server.on_message([](auto& connection, swirl::Frame& frame) {
        connection.send(std::move(frame.payload), frame.opcode);
    });
    return examples::serve(server, cli);
}
