// One loaded PKCS#11 module: libp11's context and slot list, plus the module's own function
// list for the few calls libp11 0.4.12 has no safe entry point for (see token_manager.cpp).
#pragma once

#include <libp11.h>
#include <openssl/ui.h>
#include <p11-kit/pkcs11.h>

#include <optional>
#include <span>
#include <string>

namespace hbsd::hsm {

// Owns an OpenSSL UI_METHOD that never prompts. libp11 asks its UI for a PIN when a key
// carries CKA_ALWAYS_AUTHENTICATE (a context-specific login before each signature), and its
// default UI reads the controlling terminal: a daemon must fail such a signature, not wait
// for a keyboard. (Per-signature PINs are not part of this interface.)
class NoPromptUi {
  public:
    NoPromptUi();
    NoPromptUi(NoPromptUi&& other) noexcept;
    NoPromptUi& operator=(NoPromptUi&&) = delete;
    NoPromptUi(const NoPromptUi&) = delete;
    NoPromptUi& operator=(const NoPromptUi&) = delete;
    ~NoPromptUi();

    UI_METHOD* get() const noexcept { return method_; }

  private:
    UI_METHOD* method_;
};

// Owns a loaded and initialised PKCS11_CTX (C_Initialize on load, C_Finalize on unload).
class Pkcs11Ctx {
  public:
    // Error::internal if it cannot load. `ui` answers libp11's PIN prompts and must outlive
    // the context.
    Pkcs11Ctx(const std::string& module_path, const NoPromptUi& ui);
    Pkcs11Ctx(Pkcs11Ctx&& other) noexcept;
    Pkcs11Ctx& operator=(Pkcs11Ctx&& other) noexcept;
    Pkcs11Ctx(const Pkcs11Ctx&) = delete;
    Pkcs11Ctx& operator=(const Pkcs11Ctx&) = delete;
    ~Pkcs11Ctx();

    PKCS11_CTX* get() const noexcept { return ctx_; }

  private:
    PKCS11_CTX* ctx_;
};

// Owns the slot array of PKCS11_enumerate_slots / PKCS11_update_slots.
class Pkcs11SlotList {
  public:
    Pkcs11SlotList() noexcept = default;
    Pkcs11SlotList(Pkcs11SlotList&& other) noexcept;
    Pkcs11SlotList& operator=(Pkcs11SlotList&& other) noexcept;
    Pkcs11SlotList(const Pkcs11SlotList&) = delete;
    Pkcs11SlotList& operator=(const Pkcs11SlotList&) = delete;
    ~Pkcs11SlotList();

    // A fresh list of slots and tokens (PKCS11_enumerate_slots). Releasing a list makes
    // libp11 call C_CloseAllSessions on each of its slots, which also logs the slot out.
    // PKCS11_update_slots, meant to refresh a list in place, is not used: 0.4.12 walks the
    // old array with the stride of a pointer instead of a PKCS11_SLOT and crashes on any
    // module with more than one slot.
    static Pkcs11SlotList enumerate(const Pkcs11Ctx& ctx);
    // A list of no slots. (libp11 0.4.12 cannot enumerate zero slots: it fails on
    // OPENSSL_malloc(0), e.g. for OpenSC with no reader attached.)
    static Pkcs11SlotList none(const Pkcs11Ctx& ctx) noexcept;

    std::span<PKCS11_SLOT> slots() const noexcept { return {slots_, count_}; }

  private:
    PKCS11_CTX* ctx_ = nullptr;
    PKCS11_SLOT* slots_ = nullptr;
    unsigned count_ = 0;
};

// The module's CK_FUNCTION_LIST, reached through a second reference (RTLD_NOLOAD) to the very
// library libp11 loaded, so calls through it share libp11's C_Initialize and login state.
class ModuleFunctions {
  public:
    explicit ModuleFunctions(const std::string& module_path);  // after Pkcs11Ctx loaded it
    ModuleFunctions(ModuleFunctions&& other) noexcept;
    ModuleFunctions& operator=(ModuleFunctions&& other) noexcept;
    ModuleFunctions(const ModuleFunctions&) = delete;
    ModuleFunctions& operator=(const ModuleFunctions&) = delete;
    ~ModuleFunctions();

    CK_FUNCTION_LIST* operator->() const noexcept { return list_; }

  private:
    void* handle_;
    CK_FUNCTION_LIST* list_;
};

// Owns one PKCS#11 session opened directly on the module (not one of libp11's pool).
class Pkcs11Session {
  public:
    Pkcs11Session() noexcept = default;
    Pkcs11Session(CK_FUNCTION_LIST* functions, CK_SESSION_HANDLE handle) noexcept
        : functions_(functions), handle_(handle) {}
    Pkcs11Session(Pkcs11Session&& other) noexcept;
    Pkcs11Session& operator=(Pkcs11Session&& other) noexcept;
    Pkcs11Session(const Pkcs11Session&) = delete;
    Pkcs11Session& operator=(const Pkcs11Session&) = delete;
    ~Pkcs11Session();

    explicit operator bool() const noexcept { return functions_ != nullptr; }
    CK_SESSION_HANDLE get() const noexcept { return handle_; }

  private:
    CK_FUNCTION_LIST* functions_ = nullptr;
    CK_SESSION_HANDLE handle_ = 0;
};

}  // namespace hbsd::hsm
