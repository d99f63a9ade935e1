// The Swoole custom-handshake scenario: only clients with ?token=SECRET get in; they are greeted, then echoed.
// Over wss a verified client certificate lets a client in without the token, and the greeting says what TLS saw.
//   auth_server [--host 127.0.0.1] [--port 9501] [--token secret]
//               [--tls-cert FILE --tls-key FILE [--tls-port 9502] [--tls-ca FILE [--tls-verify optional|required]]]
#include "cli.hpp"

int main(int argc, char** argv) {
    const examples::Cli cli(argc, argv, {"--token"});
    const std::string token = cli.get("--token", "secret");

    swirl::Server<> server(cli.settings());
    server.on_handshake([&token](auto& connection, const swirl::Request& req, swirl::Response& res) -> asio::awaitable<bool> {
        // Validate the key (and everything else) as RFC 6455 requires before looking at the token.
        if (const auto error = swirl::validate_upgrade(req); error != swirl::HandshakeError::none) {
            swirl::reject_handshake(res, error);
            co_return false;
        }
        const bool certified = connection.tls() && !connection.tls()->peer_subject.empty();  // verified by TLS
        if (!certified && req.query_param("token") != token) {
            res.status = 401;
            res.body = "missing or wrong token\n";
            co_return false;
        }
        co_return swirl::accept_handshake(req, res);
    });
    server.on_open([](auto& connection, const swirl::Request&) -> asio::awaitable<void> {
        if (const swirl::TlsInfo* tls = connection.tls())
            connection.send(fmt::format("hello, welcome ({}, SNI '{}', client '{}')", tls->version, tls->server_name,
                                        tls->peer_subject));
        else
            connection.send("hello, welcome");
        co_return;
    });
    server.on_message([](auto& connection, swirl::Frame& frame) -> asio::awaitable<void> {
        connection.send(frame.payload, frame.opcode);
        co_return;
    });
    return examples::serve(server, cli);
}
