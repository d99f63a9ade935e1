// swirl_broadcast: the fan-out bench server. A text message "publish <payload>" from any client is sent to every
// established connection with `Server::broadcast` (the frame is encoded once and shared; with permessage-deflate,
// compressed once); anything else is echoed. --per-recipient 1: one `Connection::send` per established connection
// instead (each compressing its own copy: the per-recipient baseline of the compressed broadcast case). The
// established connections are kept in a vector by the open and close handlers, so a publish walks exactly the
// connections `broadcast` reaches (no snapshot of the registry, no connection that is still in its handshake) and
// costs one `send` each, nothing else per recipient.
//   swirl_broadcast [common example flags: --host --port --threads --max-connections --log-level --deflate ...]
//                   [--per-recipient 1]
#include "cli.hpp"

#include <cstddef>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

using Server = swirl::Server<>;
using Connection = Server::Connection;

/// The established connections, for --per-recipient: added by on_open, removed by on_close (swap with the last).
/// The mutex is uncontended with one thread; with several it keeps open, close and a publish apart.
class Recipients {
public:
    void add(Connection& c) {
        std::lock_guard lock(mutex_);
        slot_.emplace(&c, all_.size());
        all_.push_back(&c);
    }
    void remove(Connection& c) {
        std::lock_guard lock(mutex_);
        const auto it = slot_.find(&c);
        if (it == slot_.end()) return;
        const std::size_t at = it->second;
        slot_.erase(it);
        if (at + 1 != all_.size()) {
            all_[at] = all_.back();
            slot_[all_[at]] = at;
        }
        all_.pop_back();
    }
    /// One `send` per established connection (each compresses its own copy when the extension is on).
    void send_each(std::string_view body) {
        std::lock_guard lock(mutex_);
        for (Connection* c : all_)
            if (c->is_established()) c->send(body, swirl::Opcode::text);
    }

private:
    std::mutex mutex_;
    std::vector<Connection*> all_;
    std::unordered_map<const Connection*, std::size_t> slot_;
};

} // namespace

int main(int argc, char** argv) {
    const examples::Cli cli(argc, argv, {"--per-recipient"});
    const bool per_recipient = cli.number("--per-recipient", 0) != 0;
    Server server(cli.settings());
    Recipients recipients;
    if (per_recipient) {
        server.on_open([&recipients](Connection& c, const swirl::Request&) { recipients.add(c); });
        server.on_close([&recipients](Connection& c, const swirl::CloseInfo&) { recipients.remove(c); });
    }
    server.on_message([&server, &recipients, per_recipient](auto& connection, swirl::Frame& frame) -> asio::awaitable<void> {
        constexpr std::string_view prefix = "publish ";
        const std::string_view payload = frame.payload;
        if (frame.is_text() && payload.starts_with(prefix)) {
            if (per_recipient) recipients.send_each(payload.substr(prefix.size()));
            else server.broadcast(payload.substr(prefix.size()));
        } else {
            connection.send(frame.payload, frame.opcode);
        }
        co_return;
    });
    return examples::serve(server, cli);
}
