// websocketpp_echo: websocketpp 0.8 (Debian's libwebsocketpp-dev, C++17 only) on Boost.Asio without TLS, logging off,
// TCP_NODELAY, a 64 MiB message limit. --broadcast: a text message "publish <payload>" is sent to every connection.
// --pubsub: rooms as websocketpp applications keep them (a map from topic to a set of connection handles, and each
// connection's topics for the close handler): "subscribe <topic>" joins and is answered "subscribed <topic>";
// "publish <topic> <payload>" sends <payload> to the topic's connections, one send each (as --broadcast).
// --deflate 1: permessage-deflate (the `permessage_deflate::enabled` extension in the config) at the extension's
// default 15-bit windows and context takeover as the client offers it; its zlib level (Z_DEFAULT_COMPRESSION) and
// memLevel are fixed in the library (extensions/permessage_deflate/enabled.hpp, `init`: bench/run reads them from
// there for its report), and it compresses every message (no threshold).
//   websocketpp_echo [--host 127.0.0.1] [--port 0] [--threads 1] [--broadcast 1] [--pubsub 1] [--deflate 1]
#include <websocketpp/config/asio_no_tls.hpp>
#if WEBSOCKETPP_ECHO_DEFLATE
#include <websocketpp/extensions/permessage_deflate/enabled.hpp>
#endif
#include <websocketpp/server.hpp>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#if WEBSOCKETPP_ECHO_DEFLATE
/// The asio config with permessage-deflate enabled.
struct deflate_config : public websocketpp::config::asio {
    typedef deflate_config type;
    typedef websocketpp::config::asio base;
    struct permessage_deflate_config : public base::permessage_deflate_config {};
    typedef websocketpp::extensions::permessage_deflate::enabled<permessage_deflate_config> permessage_deflate_type;
};
#endif

template <class Config>
int serve(const std::string& host, unsigned short port, int threads, bool broadcast, bool pubsub) {
    using Server = websocketpp::server<Config>;
    Server server;
    server.clear_access_channels(websocketpp::log::alevel::all);
    server.clear_error_channels(websocketpp::log::elevel::all);
    server.init_asio();
    server.set_reuse_addr(true);
    server.set_listen_backlog(4096);
    server.set_max_message_size(64u << 20);
    // The socket-init handler runs before the socket is opened; TCP_NODELAY goes on once it is accepted.
    server.set_tcp_post_init_handler([&server](websocketpp::connection_hdl h) {
        websocketpp::lib::asio::error_code ec;
        server.get_con_from_hdl(h)->get_socket().set_option(boost::asio::ip::tcp::no_delay(true), ec);
    });
    std::mutex mutex;
    using Handles = std::set<websocketpp::connection_hdl, std::owner_less<websocketpp::connection_hdl>>;
    Handles connections;
    std::map<std::string, Handles, std::less<>> topics;
    std::map<websocketpp::connection_hdl, std::vector<std::string>, std::owner_less<websocketpp::connection_hdl>> joined;
    if (broadcast) {
        server.set_open_handler([&](websocketpp::connection_hdl h) {
            std::lock_guard lock(mutex);
            connections.insert(h);
        });
        server.set_close_handler([&](websocketpp::connection_hdl h) {
            std::lock_guard lock(mutex);
            connections.erase(h);
        });
    }
    if (pubsub) {
        server.set_close_handler([&](websocketpp::connection_hdl h) {
            std::lock_guard lock(mutex);
            const auto it = joined.find(h);
            if (it == joined.end()) return;
            for (const auto& topic : it->second) {
                const auto room = topics.find(topic);
                room->second.erase(h);
                if (room->second.empty()) topics.erase(room);
            }
            joined.erase(it);
        });
    }
    server.set_message_handler([&](websocketpp::connection_hdl h, typename Server::message_ptr message) {
        const std::string& payload = message->get_payload();
        websocketpp::lib::error_code ec;
        if (pubsub && message->get_opcode() == websocketpp::frame::opcode::text) {
            const std::string_view text = payload;
            if (text.rfind("subscribe ", 0) == 0) {
                const std::string topic(text.substr(10));
                {
                    std::lock_guard lock(mutex);
                    if (topics[topic].insert(h).second) joined[h].push_back(topic);
                }
                server.send(h, "subscribed " + topic, websocketpp::frame::opcode::text, ec);
                return;
            }
            if (const auto space = text.find(' ', 8); text.rfind("publish ", 0) == 0 && space != std::string_view::npos) {
                const std::string body(text.substr(space + 1));
                std::lock_guard lock(mutex);
                const auto room = topics.find(text.substr(8, space - 8));
                if (room != topics.end())
                    for (const auto& c : room->second) server.send(c, body, websocketpp::frame::opcode::text, ec);
                return;
            }
        }
        if (broadcast && message->get_opcode() == websocketpp::frame::opcode::text && payload.rfind("publish ", 0) == 0) {
            const std::string body = payload.substr(8);
            std::lock_guard lock(mutex);
            for (const auto& c : connections) server.send(c, body, websocketpp::frame::opcode::text, ec);
            return;
        }
        server.send(h, payload, message->get_opcode(), ec);
    });
    server.listen(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(host), port));
    server.start_accept();
    websocketpp::lib::asio::error_code ec;
    std::printf("listening on ws://%s:%u\n", host.c_str(), static_cast<unsigned>(server.get_local_endpoint(ec).port()));
    std::fflush(stdout);
    std::vector<std::thread> workers;
    for (int i = 1; i < threads; ++i) workers.emplace_back([&server] { server.run(); });
    server.run();
    for (auto& w : workers) w.join();
    return 0;
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    unsigned short port = 0;
    int threads = 1;
    bool broadcast = false, pubsub = false, deflate = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (flag == "--host") host = argv[i + 1];
        else if (flag == "--port") port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
        else if (flag == "--threads") threads = std::max(1, std::atoi(argv[i + 1]));
        else if (flag == "--broadcast") broadcast = std::atoi(argv[i + 1]) != 0;
        else if (flag == "--pubsub") pubsub = std::atoi(argv[i + 1]) != 0;
        else if (flag == "--deflate") deflate = std::atoi(argv[i + 1]) != 0;
    }
#if WEBSOCKETPP_ECHO_DEFLATE
    if (deflate) return serve<deflate_config>(host, port, threads, broadcast, pubsub);
#else
    if (deflate) {
        std::fprintf(stderr, "websocketpp_echo: --deflate: built without zlib\n");
        return 2;
    }
#endif
    return serve<websocketpp::config::asio>(host, port, threads, broadcast, pubsub);
}
