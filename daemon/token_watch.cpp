#include "daemon/token_watch.hpp"

#include "daemon/log.hpp"
#include "hsm/pcsc/mapping.hpp"

namespace hbsd::daemon {

void apply_token_mapping(const Services& services, std::vector<hsm::TokenInfo>& tokens) {
    // The mapping in force now (a reload may replace it); kept alive while it is read.
    const auto config = services.config();
    const auto& mappings = config->token_mapping;
    if (mappings.empty() || !services.pcsc_readers) return;
    const auto readers = services.pcsc_readers();
    for (auto& t : tokens) {
        // A module that names its reader (OpenSC) knows better than the mapping; an empty
        // reader's slot is not a token.
        if (t.reader || t.label.empty()) continue;
        const auto r = hsm::pcsc::reader_for_token(mappings, readers, t.module, t.serial);
        if (!r) continue;
        t.reader = r->name;
        if (!r->present) {
            t.present = false;
            t.logged_in = false;
        }
    }
}

TokenWatch::TokenWatch(Services& services, hsm::pcsc::WatcherOptions options)
    : services_(services) {
    // Without a mapping at start-up there is no watcher; a reload cannot add one (reload.cpp).
    if (services.config()->token_mapping.empty()) return;
    watcher_ = std::make_unique<hsm::pcsc::Watcher>(
        [this](const hsm::pcsc::Event& e) {
            // At once, on the watcher's thread (a lock and a wipe, no PKCS#11): a card pulled
            // and put back before the refresher looks must still need its PIN again.
            if (e.kind == hsm::pcsc::EventKind::card_removed ||
                e.kind == hsm::pcsc::EventKind::reader_removed)
                services_.pin_cache.drop_reader(e.reader);
            log::info("pcsc: %s %s", std::string(hsm::pcsc::to_string(e.kind)).c_str(),
                      e.reader.c_str());
            std::lock_guard lock(mu_);
            dirty_ = true;
            cv_.notify_one();
        },
        options);
    auto* w = watcher_.get();
    services.pcsc_readers = [w] { return w->readers(); };
    refresher_ = std::thread([this] { run(); });
}

TokenWatch::~TokenWatch() {
    // The refresher first (it reads the watcher); a late event only sets dirty_. The server,
    // whose workers read pcsc_readers, is gone by now.
    {
        std::lock_guard lock(mu_);
        stop_ = true;
        cv_.notify_one();
    }
    if (refresher_.joinable()) refresher_.join();
    services_.pcsc_readers = nullptr;
    watcher_.reset();
}

void TokenWatch::run() noexcept {
    bool said_unavailable = false;
    for (;;) {
        {
            std::unique_lock lock(mu_);
            // Also wakes every few seconds to notice pcscd going or coming back for the log.
            cv_.wait_for(lock, std::chrono::seconds(2), [&] { return dirty_ || stop_; });
            if (stop_) return;
            // Nothing happened, and pcscd is as available as last said.
            if (!dirty_ && watcher_->service_available() != said_unavailable) continue;
            dirty_ = false;
        }
        {
            const bool available = watcher_->service_available();
            if (!available && !said_unavailable) {
                log::warning(
                    "pcscd is not available (%s): serving without reader events, "
                    "retrying in the background",
                    watcher_->last_error().c_str());
                said_unavailable = true;
            } else if (available && said_unavailable) {
                log::info("pcscd is available again");
                said_unavailable = false;
            }
        }
        try {
            current_tokens(services_);
        } catch (const std::exception& e) {
            log::warning("refreshing tokens after a PC/SC event: %s", e.what());
        }
    }
}

}  // namespace hbsd::daemon
