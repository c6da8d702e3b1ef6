// Smart cards and USB tokens in PC/SC readers, wired into the daemon.
//
// With any [[token_mapping]] in the configuration, a TokenWatch runs the PC/SC watcher
// (hsm/pcsc/watcher.hpp) and a refresher thread: every reader or card event makes the
// refresher re-read the slot lists (TokenManager::refresh, through list_tokens), which turns
// into token_inserted/token_removed events and ends the sessions of tokens that left
// (note_tokens). The watcher thread itself never calls PKCS#11: a slow module must not delay
// the next PC/SC event.
//
// pcscd is optional: without it hbsd serves the tokens its modules see, logs once that pcscd
// is unavailable, and the watcher retries with backoff; when pcscd comes back it is logged.
#pragma once

#include "daemon/services.hpp"
#include "hsm/pcsc/watcher.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace hbsd::daemon {

class TokenWatch {
  public:
    // Starts nothing when the configuration maps no token to a reader. Sets
    // services.pcsc_readers; must be made before serving and outlive the server.
    explicit TokenWatch(Services& services, hsm::pcsc::WatcherOptions options = {});
    ~TokenWatch();
    TokenWatch(const TokenWatch&) = delete;
    TokenWatch& operator=(const TokenWatch&) = delete;

  private:
    void run() noexcept;

    Services& services_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool dirty_ = false;  // guarded by mu_
    bool stop_ = false;   // guarded by mu_
    std::thread refresher_;
    std::unique_ptr<hsm::pcsc::Watcher> watcher_;
};

// What the mapping says about tokens whose module does not know its reader: the reader (from
// [[token_mapping]] and pcscd's readers) and, when that reader holds no card, not present.
// No-op without a mapping or without pcscd.
void apply_token_mapping(const Services& services, std::vector<hsm::TokenInfo>& tokens);

}  // namespace hbsd::daemon
