// libFuzzer target: bytes off the socket -> FrameDecoder -> decode_call -> the dispatch table
// (route: capability checks, interface and method lookup) -> the handler, synchronously, with
// no PKCS#11 module loaded (token methods fail with TokenNotFound / SessionNotFound before any
// PKCS#11 call; Verify goes through dsig). Every reply is encoded as the daemon would send it.
// Anything but hbsd::Error escaping, a crash or a sanitizer report is a finding.
#include "daemon/dispatch.hpp"
#include "daemon/log.hpp"
#include "protocol/codec.hpp"
#include "protocol/frame.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace {

using namespace hbsd;
using namespace hbsd::daemon;

struct World {
    World() {
        log::set_quiet(true);
        Config config;
        config.limits.max_document_bytes = 64 * 1024;
        config.limits.max_batch_items = 8;
        services = std::make_unique<Services>(
            config, std::make_unique<hsm::TokenManager>(std::vector<hsm::ModuleConfig>{}), nullptr);
    }
    std::unique_ptr<Services> services;
    Dispatcher dispatcher;
};

World& world() {
    static World w;
    return w;
}

void handle(World& w, const Caller& caller, const std::string& frame) {
    std::string out;
    try {
        auto call = protocol::decode_call(frame);
        const auto& entry = w.dispatcher.route(caller, call);
        const auto now = w.services->snapshot();
        Request req{caller, call, protocol::Params(call.parameters), {}, now.config, now.trust};
        if (call.more)
            req.stream = [&](boost::json::object part) {
                out = protocol::encode_reply(part, true);
            };
        out = protocol::encode_reply(w.dispatcher.invoke(entry, *w.services, req));
    } catch (const Error& e) {
        out = protocol::encode_error(e);
    }
    // The reply must be a frame a client can read back.
    (void)protocol::decode_reply(out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    auto& w = world();
    // First byte: the caller's capabilities; second: the read size the decoder is fed with.
    const Caller caller{1000, 1000, 1, static_cast<CapabilitySet>(data[0] & 7u), {}};
    const std::size_t chunk = 1 + data[1];
    std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
    protocol::FrameDecoder decoder(64 * 1024);
    while (!in.empty()) {
        const auto part = in.substr(0, chunk);
        in.remove_prefix(part.size());
        const bool too_large = decoder.feed(part) == protocol::FrameDecoder::Status::too_large;
        while (auto f = decoder.next()) handle(w, caller, *f);
        if (too_large) break;
    }
    return 0;
}
