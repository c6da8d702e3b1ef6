// The PC/SC test rig: a private pcscd with one vsmartcard-vpcd reader entry (two slots, so two
// readers), and emulated cards (hbsd-vcard) put into and taken out of its slots.
//
// Isolation, so that tests can run in parallel beside each other and beside a system pcscd:
// - the socket: pcscd 1.9.9 always creates /run/pcscd/pcscd.comm itself, but takes a socket
//   passed the systemd way (LISTEN_FDS=1, LISTEN_PID, fd 3) instead; the rig binds its own
//   per-process path and points the client library at it with PCSCLITE_CSOCK_NAME. libpcsclite
//   reads that variable once per process, so every rig of one process shares one path
//   (socket_path()) and only one rig may run at a time in a process;
// - the readers: `pcscd -c <dir>` reads a private reader.conf.d whose vpcd entry listens on
//   a free TCP port pair (vpcd opens slot N on port + N) below the ephemeral port range,
//   picked per rig (HBSD_PCSC_RIG_PORT pins it), and picked again if vpcd finds it taken.
// pcscd still writes /run/pcscd/pcscd.pid, which nothing here depends on.
//
// Test support: failures throw std::runtime_error with pcscd's log attached.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <string>

namespace hbsd::test {

struct PcscRigOptions {
    // false: pcscd runs with an empty reader.conf.d (no readers at all).
    bool with_reader = true;
    // false: the constructor only prepares; call start_pcscd().
    bool start = true;
    // vpcd's FRIENDLYNAME; pcscd names the readers "<name> 00 00" and "<name> 00 01".
    std::string friendly_name = "hbsd Test PCD";
    // Generous: CI machines are slow and shared.
    std::chrono::milliseconds timeout{20000};
};

class PcscRig {
  public:
    static constexpr unsigned slots = 2;

    explicit PcscRig(PcscRigOptions options = {});
    // Removes the cards, stops pcscd, deletes the rig's directory.
    ~PcscRig();
    PcscRig(const PcscRig&) = delete;
    PcscRig& operator=(const PcscRig&) = delete;

    // PCSCLITE_CSOCK_NAME of this process (set in the environment by the first rig).
    static const std::string& socket_path();

    // The PC/SC name of the reader of `slot`.
    std::string reader(unsigned slot) const;
    // vpcd's TCP port for `slot`.
    unsigned port(unsigned slot) const;
    const std::filesystem::path& dir() const { return dir_; }

    // With or without the vpcd reader entry from the next start_pcscd() on (serial readers
    // come only from reader.conf.d, which pcscd reads once at start).
    void configure_reader(bool with_reader);

    // Starts pcscd and waits until it answers and lists the configured readers.
    void start_pcscd();
    // Sends `signal` (SIGTERM: a clean stop; SIGKILL: a crash) and waits for pcscd to exit:
    // every reader disappears with it.
    void stop_pcscd(int signal = SIGTERM);
    bool pcscd_running() const { return pcscd_ > 0; }
    // Everything pcscd printed so far (all its runs).
    std::string pcscd_log() const;

    // Starts an emulated card in `slot`: it connects to vpcd (now, or when pcscd is started)
    // and stays inserted until remove(), across pcscd restarts. `atr_hex` empty: the card's
    // default ATR, atr_for_serial(serial).
    void insert(unsigned slot, const std::string& serial, const std::string& atr_hex = {});
    // SIGTERM to the card: it disconnects, which vpcd reports as a removal.
    void remove(unsigned slot);
    bool inserted(unsigned slot) const { return cards_.at(slot) > 0; }

    // The ATR (lowercase hex) hbsd-vcard presents for `serial`: 3B 8K 80 01 <serial> TCK.
    static std::string atr_for_serial(const std::string& serial);

    // Waits until pcscd itself reports a card present (or absent) in `slot`; for checking the
    // rig without the code under test.
    bool wait_card(unsigned slot, bool present, std::chrono::milliseconds timeout) const;

  private:
    void write_config() const;
    void wait_ready();

    PcscRigOptions options_;
    std::filesystem::path dir_;
    unsigned base_port_ = 0;
    std::size_t log_offset_ = 0;  // where the current pcscd's part of pcscd.log begins
    pid_t pcscd_ = -1;
    std::array<pid_t, slots> cards_{-1, -1};
};

}  // namespace hbsd::test
