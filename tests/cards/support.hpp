// Helpers of the tests/cards integration tests: a WatchEvents reader on its own thread, and
// the calls the tests repeat.
#pragma once

#include "tests/daemon/harness.hpp"

#include <sys/socket.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace hbsd::test::cards {

using namespace std::chrono_literals;
namespace json = boost::json;

inline std::string M(const char* name) {
    return std::string(kSigner) + name;
}

inline std::string open_session(Daemon& d, protocol::Client& c) {
    return std::string(c.call(M("OpenSession"), {{"token", d.token_uri()}, {"pin", kPin}})
                           .at("session")
                           .as_string());
}

inline Error error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e;
    }
    throw std::runtime_error("expected an hbsd::Error");
}

// One WatchEvents connection, read on its own thread.
class Watch {
  public:
    explicit Watch(Daemon& d) : client_(d.client()) {
        thread_ = std::thread([this] {
            try {
                client_.call_more(M("WatchEvents"), {}, [this](const json::object& r, bool) {
                    std::lock_guard lock(mu_);
                    events_.push_back(r.at("event").as_object());
                    cv_.notify_all();
                });
            } catch (...) {
            }
            std::lock_guard lock(mu_);
            ended_ = true;
            cv_.notify_all();
        });
    }
    ~Watch() {
        ::shutdown(client_.native_handle(), SHUT_RDWR);
        thread_.join();
    }
    // Waits for an event of `kind` (and `detail`, if given) after the first `from` events; its
    // index, or -1.
    long wait_for(const std::string& kind, std::optional<std::string> detail = {},
                  std::size_t from = 0, std::chrono::milliseconds timeout = 10s) {
        std::unique_lock lock(mu_);
        long found = -1;
        cv_.wait_for(lock, timeout, [&] {
            for (std::size_t i = from; i < events_.size(); ++i)
                if (events_[i].at("kind").as_string() == kind &&
                    (!detail || (events_[i].contains("detail") &&
                                 events_[i].at("detail").as_string() == *detail))) {
                    found = static_cast<long>(i);
                    return true;
                }
            return ended_;
        });
        return found;
    }
    std::vector<json::object> events() {
        std::lock_guard lock(mu_);
        return events_;
    }
    std::size_t count(const std::string& kind) {
        std::size_t n = 0;
        for (const auto& e : events()) n += e.at("kind").as_string() == kind;
        return n;
    }

  private:
    protocol::Client client_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<json::object> events_;
    bool ended_ = false;
    std::thread thread_;
};

// Waits until the daemon has a watcher subscribed (the WatchEvents call is in flight once
// its thread started; a short pause lets the daemon register it).
inline void settle() {
    std::this_thread::sleep_for(300ms);
}

inline std::int64_t signatures_made(protocol::Client& c) {
    return c.call(M("Status")).at("signatures").as_int64();
}

inline json::array batch_items(int n, const std::string& prefix) {
    json::array items;
    for (int i = 1; i <= n; ++i)
        items.push_back(json::object{{"document", fixture_student(i)},
                                     {"request_id", prefix + std::to_string(i)}});
    return items;
}

inline json::object batch_params(Daemon& d, const std::string& session, json::array items) {
    return {{"session", session},        {"key", d.key_uri("gvbm-TOAN")},
            {"role", "subject_teacher"}, {"year", kYear},
            {"subject", "TOAN"},         {"items", std::move(items)}};
}

}  // namespace hbsd::test::cards
