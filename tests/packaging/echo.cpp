// The consumer every packaging test builds (tests/packaging/run): an echo server that knows swirl only through
// what its build system found. Listens on 127.0.0.1 and the port given as argv[1] (0 picks a free one), prints
// `listening on ws://127.0.0.1:PORT` and the features it was compiled with, and stops cleanly on SIGINT/SIGTERM
// (the server catches them: `Settings::stop_on_signals`).
#include <swirl.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#ifndef SWIRL_TLS
#define SWIRL_TLS 0
#endif
#ifndef SWIRL_HAS_DEFLATE
#define SWIRL_HAS_DEFLATE 0
#endif

int main(int argc, char** argv) {
    swirl::Settings settings;
    settings.host = "127.0.0.1";
    settings.port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 9501);
    swirl::Server<> server(settings);
    server.on_message([](auto& connection, swirl::Frame& frame) {
        connection.send(std::move(frame.payload), frame.opcode);
    });
    server.listen();
    fmt::print("features: tls={} deflate={}\n", SWIRL_TLS, SWIRL_HAS_DEFLATE);
    fmt::print("listening on ws://127.0.0.1:{}\n", server.local_endpoints().front().port());
    std::fflush(stdout);
    server.run();
}
